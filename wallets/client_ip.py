"""The player's address for the country checks, from the trusted-proxy list.

Behind a load balancer REMOTE_ADDR is the balancer; the client is in X-Forwarded-For, which
anyone can also send straight to the app. So the header is believed only as far as the proxies
in CLIENT_IP_TRUSTED_PROXIES vouch for it: REMOTE_ADDR must be the innermost trusted proxy,
the hops before it in the header must be the others (outermost first, as the list is written),
and the client is the hop just before them — never an entry further left, which the client
wrote itself. Parsing and matching (IPs, CIDRs, IPv6, IPv4-mapped) are django-ipware's; with
no trusted proxies, or a peer that is not one, the answer is REMOTE_ADDR.

Behind deploy/nginx the app listens on a unix socket only nginx can reach, so there is no peer
address to check; nginx overwrites `X-Real-IP` with the address it saw, and CLIENT_IP_HEADER
names that header. It must never be set where a client can reach the app directly.

This one function is the client address everywhere: the country checks, the staff login
lockout (django-axes, AXES_CLIENT_IP_CALLABLE) and the API's throttles.
"""

from dataclasses import dataclass

from django.conf import settings
from ipware import get_client_ip

_HEADER = "HTTP_X_FORWARDED_FOR"


@dataclass(frozen=True)
class _Chain:
    META: dict


def client_ip(request) -> str | None:
    """The client's IP address as a string, or None when the request carries none."""
    header = settings.CLIENT_IP_HEADER
    if header:
        meta_name = "HTTP_" + header.upper().replace("-", "_")
        return (request.META.get(meta_name) or "").strip() or None
    peer = (request.META.get("REMOTE_ADDR") or "").strip() or None
    trusted = list(settings.CLIENT_IP_TRUSTED_PROXIES)
    forwarded = (request.META.get(_HEADER) or "").strip()
    if not trusted or not forwarded or peer is None:
        return peer
    # The chain as the innermost proxy saw it: what arrived in the header, then the peer
    # itself. ipware takes the hop before the trailing trusted ones, and only if those
    # trailing hops match the list in order; otherwise it finds nothing.
    found, _routable = get_client_ip(
        _Chain(META={_HEADER: f"{forwarded}, {peer}"}),
        proxy_order="left-most",
        proxy_trusted_ips=trusted,
        request_header_order=[_HEADER],
        strict=False,
    )
    return found or peer
