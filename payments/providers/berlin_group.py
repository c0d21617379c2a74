"""Berlin Group NextGenPSD2 XS2A, Payment Initiation Service (PIS), framework version 1.3.x.

We are the PISP (the TPP): we initiate a SEPA credit transfer from the player's account at
their bank (the ASPSP) to the operator's collection account, the player authorises it on the
bank's own page (Redirect SCA approach), and we read the payment's `transactionStatus` back.
Payouts and refunds are payment initiations from the operator's own account under an SCA
exemption (trusted beneficiary / secure corporate payment process), so no redirect.

Sources:
- NextGenPSD2 XS2A Framework Implementation Guidelines v1.3.x and the OpenAPI definition
  psd2-api 1.3.12 (2022-07-01), https://www.berlin-group.org/nextgenpsd2-downloads —
  endpoints, headers, `transactionStatus` codes, `tppMessages` codes and the application-level
  request signature (IG section "Signing Messages at Application Layer": `Digest`,
  `Signature` after draft-cavage-http-signatures-10, `TPP-Signature-Certificate`).
- Decline codes: the Berlin Group `tppMessages` codes (OpenAPI 1.3.8 enumerations
  MessageCode400_PIS … MessageCode405_PIS_CANC, MessageCode200InitiationStatus) and the
  ISO 20022 ExternalStatusReason1Code list, https://www.iso20022.org/catalogue-messages/
  additional-content-messages/external-code-sets, as SEPA uses it (EPC135-18 "Guidance on
  reason codes for SCT R-transactions").

What the protocol does not give, and what we do instead (docs/providers/berlin_group.md):
- Status notifications to `TPP-Notification-URI` carry no signature a TPP can verify. A
  notification is only a hint: `verify_webhook` accepts a well-formed one that names a payment
  (by `paymentId` or its resource link); `parse_webhook` fetches the payment's status and
  details from the bank over our signed API calls and reports only what the bank says. The
  dedup key is the paymentId plus the fetched `transactionStatus`, never a body field.
- Events we do not act on (a status that is still pending) are returned as PENDING results;
  a notification naming a payment the bank does not know gives an empty list.
- SEPA credit transfers have no chargebacks: no dispute events exist in this protocol.
"""

import base64
import hashlib
import json
import logging
import re
import socket
import uuid
from email.utils import formatdate
from functools import lru_cache
from urllib.parse import quote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .base import (
    CANCELLED,
    DEPOSIT,
    FAILED,
    PENDING,
    REFUND,
    SUCCEEDED,
    WITHDRAWAL,
    InvalidSignature,
    MalformedWebhook,
    PayerInstrument,
    PaymentAdapter,
    ProviderEvent,
    ProviderResult,
    ProviderTimeout,
    ProviderUnavailable,
    money,
    parse_decimal,
    provider_secret,
)

log = logging.getLogger(__name__)

SCT = "sepa-credit-transfers"
SCT_INST = "instant-sepa-credit-transfers"
SEPA_PRODUCTS = (SCT_INST, SCT)
# Deposits default to SCT Inst: the money is on the operator's account within seconds and the
# bank reports ACCC. Payouts default to SCT: cheaper, and every SEPA bank is reachable by it
# while SCT Inst reachability is not universal (an unreachable bank rejects the payment).
DEFAULT_DEPOSIT_PRODUCT = SCT_INST
DEFAULT_PAYOUT_PRODUCT = SCT

# ISO 20022 transaction statuses as the OpenAPI lists them. We credit only on settlement:
# ACSC (settled on the debtor's account: the payer's bank has executed the transfer, which
# PSD2 art. 80 makes irrevocable for the payer) and ACCC (settled on the creditor's account,
# ours: strictly later than ACSC; banks report it directly for SCT Inst). Everything accepted
# but not settled (ACTC, ACCP, ACFC, ACSP, ACWC, ACWP, PATC) is still pending; PART is for bulk
# payments only and never final for a single one.
TRANSACTION_STATUSES = {
    "RCVD": PENDING,  # Received
    "PDNG": PENDING,  # Pending: further checks follow
    "ACTC": PENDING,  # AcceptedTechnicalValidation (after SCA)
    "ACCP": PENDING,  # AcceptedCustomerProfile
    "ACFC": PENDING,  # AcceptedFundsChecked
    "ACSP": PENDING,  # AcceptedSettlementInProcess
    "ACWC": PENDING,  # AcceptedWithChange (e.g. the execution date moved)
    "ACWP": PENDING,  # AcceptedWithoutPosting
    "PATC": PENDING,  # PartiallyAcceptedTechnicalCorrect: more authorisations needed
    "PART": PENDING,  # PartiallyAccepted: bulk payments only
    "ACSC": SUCCEEDED,  # AcceptedSettlementCompleted (debtor side)
    "ACCC": SUCCEEDED,  # AcceptedSettlementCompletedCreditorAccount
    "RJCT": FAILED,  # Rejected, including SCA not completed in time
    "CANC": CANCELLED,  # Cancelled before execution
}

# The headers the IG lets a signature cover, in the order we sign them. "digest",
# "x-request-id" and "date" always; the PSU and redirect headers whenever they are sent.
SIGNED_HEADERS = (
    "digest",
    "x-request-id",
    "date",
    "psu-id",
    "psu-corporate-id",
    "tpp-redirect-uri",
)

# A paymentId goes into a URL path: only characters that need no escaping, no slashes.
_PAYMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}")
_RESOURCE = re.compile(r"/v1/payments/(?P<product>[a-z0-9.-]+)/(?P<id>[^/?#]+)(?:/status)?/?")
_STATUS_CODE = re.compile(r"[A-Z]{4}")

# Our own references (payments.services.common.new_reference) say what a payment was for; we
# send them as endToEndIdentification and read them back from the bank.
_SUBJECT_BY_PREFIX = {"dep_": DEPOSIT, "wd_": WITHDRAWAL, "ref_": REFUND}


class _NotANotification(ValueError):
    pass


@lru_cache(maxsize=16)
def _load_seal(certificate_pem: str, key_pem: str, passphrase: str):
    """The TPP's QSealC and its private key. Decrypting the key costs a key derivation, so it
    is done once per process and key."""
    certificate = _load_certificate(certificate_pem)
    key = serialization.load_pem_private_key(key_pem.encode(), passphrase.encode() or None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the signing key is not an RSA key")
    if key.public_key().public_numbers() != certificate.public_key().public_numbers():
        raise ValueError("the signing key does not belong to the certificate")
    return certificate, key


def _load_certificate(text: str) -> x509.Certificate:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        return x509.load_pem_x509_certificate(text.encode())
    return x509.load_der_x509_certificate(base64.b64decode(text, validate=True))


def key_id(certificate: x509.Certificate) -> str:
    """`SN=<serial in hex>,CA=<issuer DN>`, as the IG formats the keyId (spaces in the DN
    percent-encoded, as in the IG's example)."""
    issuer = quote(certificate.issuer.rfc4514_string(), safe="=,")
    return f"SN={certificate.serial_number:X},CA={issuer}"


def body_digest(body: bytes) -> str:
    """RFC 3230 `Digest` value; an empty body has the digest of the empty string."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()


def signing_string(names, headers: dict[str, str], *, request_target: str = "") -> str:
    """draft-cavage-http-signatures-10 section 2.3: `name: value` lines in the listed order;
    `(request-target)` is `<method> <path>` (unused by the IG, kept for the draft's vectors)."""
    lines = []
    for name in names:
        value = request_target if name == "(request-target)" else headers[name]
        lines.append(f"{name}: {value}")
    return "\n".join(lines)


def rsa_sha256(key: rsa.RSAPrivateKey, text: str) -> str:
    return base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


@lru_cache(maxsize=64)
def _outbound_ip(host: str, port: int) -> str:
    """The address this host uses to reach `host`: a connected UDP socket sends nothing."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(address)
            return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"


class BerlinGroupConnector(PaymentAdapter):
    """provider.options (docs/providers/berlin_group.md):
    `tpp_certificate` (the QSealC, PEM or base64 DER), `tpp_signing_key` (its PKCS#8 private
    key, PEM, encrypted with the provider's api_key as passphrase), `creditor_iban` and
    `creditor_name` (the operator's collection account), `corporate_id` (PSU-Corporate-ID at
    the operator's own bank, for payouts), `deposit_payment_product`,
    `payout_payment_product`, `tpp_ip_address` (PSU-IP-Address when we act as the PSU)."""

    protocol = "berlin_group"
    webhook_content_types = ("application/json",)
    # Soft: a later retry, another account or another route may succeed.
    soft_declines = frozenset(
        {
            # Berlin Group tppMessages codes.
            "FUNDS_NOT_AVAILABLE",  # the bank's funds check failed (status 200 message code)
            "PRODUCT_INVALID",  # 403: e.g. SCT Inst not available for this PSU's account
            "ACCESS_EXCEEDED",  # 429: too many requests; nothing was created
            # ISO 20022 ExternalStatusReason1Code.
            "AM04",  # InsufficientFunds
            "TM01",  # InvalidCutOffTime: received after the cut-off
            "MS03",  # NotSpecifiedReasonAgentGenerated: the bank's own unexplained refusal
            "AB03",  # AbortedSettlementTimeout
            "AB05",  # TimeoutCreditorAgent
            "AB06",  # TimeoutInstructedAgent
            "AB07",  # OfflineAgent
            "AB08",  # OfflineCreditorAgent
            "AB11",  # TimeoutDebtorAgent
        }
    )
    supports_payouts = True
    supports_cancel = True

    # --- configuration ---------------------------------------------------------------------

    def _option(self, name: str, default: str = "") -> str:
        value = (self.provider.options or {}).get(name, default)
        return value if isinstance(value, str) else default

    def _product(self, name: str, default: str) -> str:
        product = self._option(name, default)
        if product not in SEPA_PRODUCTS:
            raise ProviderUnavailable(
                f"{self.provider.code}: options.{name} must be one of {', '.join(SEPA_PRODUCTS)}.",
                provider=self.provider.code,
            )
        return product

    def _products(self, preferred: str) -> list[str]:
        """The product a payment was most likely initiated with first, then the other: we keep
        no product per payment, and the options may have changed while it was open."""
        return [preferred, *(p for p in SEPA_PRODUCTS if p != preferred)]

    def _seal(self):
        try:
            return _load_seal(
                self._option("tpp_certificate"),
                provider_secret(self.provider, "tpp_signing_key"),
                self.api_key,
            )
        except (ValueError, TypeError) as exc:
            # Never log the key or the passphrase: only that they do not load.
            raise ProviderUnavailable(
                f"{self.provider.code}: the TPP signing certificate or key cannot be loaded "
                f"({type(exc).__name__}).",
                provider=self.provider.code,
            ) from None

    def _psu_ip(self, ip) -> str:
        if ip:
            return str(ip)
        configured = self._option("tpp_ip_address")
        if configured:
            return configured
        # The IG: without the PSU's address, the TPP sends the one it submits the request from.
        parts = urlsplit(self.provider.api_base_url)
        return _outbound_ip(parts.hostname or "127.0.0.1", parts.port or 443)

    # --- signed HTTP ---------------------------------------------------------------------

    def _signed_headers(self, body: bytes, extra: dict[str, str]) -> dict[str, str]:
        certificate, key = self._seal()
        headers = {
            "Accept": "application/json",
            "X-Request-ID": str(uuid.uuid4()),
            "Digest": body_digest(body),
            "Date": formatdate(usegmt=True),
            **extra,
        }
        lower = {name.lower(): value for name, value in headers.items()}
        names = [name for name in SIGNED_HEADERS if name in lower]
        signature = rsa_sha256(key, signing_string(names, lower))
        headers["Signature"] = (
            f'keyId="{key_id(certificate)}",algorithm="rsa-sha256",'
            f'headers="{" ".join(names)}",signature="{signature}"'
        )
        headers["TPP-Signature-Certificate"] = base64.b64encode(
            certificate.public_bytes(serialization.Encoding.DER)
        ).decode()
        return headers

    def _call(self, method: str, path: str, *, payload: dict | None = None, headers=None):
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        extra = dict(headers or {})
        if payload is not None:
            extra["Content-Type"] = "application/json"
        return self._request(method, path, content=body, headers=self._signed_headers(body, extra))

    def _payment_path(self, product: str, payment_id: str, suffix: str = "") -> str:
        return f"v1/payments/{product}/{quote(payment_id, safe='')}{suffix}"

    def _get(self, product: str, payment_id: str, suffix: str = "") -> dict | None:
        """A payment resource; None when the bank does not know it under this product."""
        response = self._call("GET", self._payment_path(product, payment_id, suffix))
        if response.status_code in (403, 404):
            # 404 RESOURCE_UNKNOWN / PRODUCT_UNKNOWN; 403 RESOURCE_UNKNOWN for an id that
            # belongs to another TPP or product.
            return None
        if response.status_code != 200:
            # 401 (our certificate or signature refused), 400, 405, 429: try again later.
            raise ProviderUnavailable(
                f"{self.provider.code} refused the payment{suffix} request: "
                f"{response.status_code} {_error_code(_json_or_empty(response))}",
                provider=self.provider.code,
            )
        payload = self._json(response)
        if not isinstance(payload, dict):
            raise ProviderTimeout(
                f"{self.provider.code} answered the payment{suffix} request with a non-object.",
                provider=self.provider.code,
            )
        return payload

    def _locate(self, payment_id: str, products: list[str]) -> tuple[str, dict] | None:
        for product in products:
            status = self._get(product, payment_id, "/status")
            if status is not None:
                return product, status
        return None

    # --- results -------------------------------------------------------------------------

    def _decline(self, payload) -> str:
        """The bank's reason: the first ERROR tppMessage's code (a Berlin Group code or, where
        the bank passes it on, an ISO 20022 status reason), else the bare status."""
        messages = payload.get("tppMessages") if isinstance(payload, dict) else None
        if isinstance(messages, list):
            for message in messages:
                if (
                    isinstance(message, dict)
                    and message.get("category") == "ERROR"
                    and isinstance(message.get("code"), str)
                    and message["code"].strip()
                ):
                    return message["code"].strip()[:64]
        return "RJCT"

    def _status_result(
        self, payment_id: str, status_payload: dict, *, redirect_url: str = ""
    ) -> ProviderResult:
        code = status_payload.get("transactionStatus")
        if not isinstance(code, str):
            raise ProviderTimeout(
                f"{self.provider.code} answered without a transactionStatus.",
                provider=self.provider.code,
            )
        status = TRANSACTION_STATUSES.get(code, PENDING)
        decline = self._decline(status_payload) if status == FAILED else ""
        return ProviderResult(
            status=status,
            provider_reference=payment_id,
            redirect_url=redirect_url if status == PENDING else "",
            decline_code=decline,
            decline_kind=self.decline_kind(decline),
        )

    def _settled(self, result: ProviderResult, details: dict, *, amount, currency, payer: bool):
        """A settled payment, checked against what we instructed: a bank answer that does not
        match is never credited or marked paid (it stays pending and is logged)."""
        instructed = details.get("instructedAmount")
        instructed = instructed if isinstance(instructed, dict) else {}
        try:
            reported = parse_decimal(instructed.get("amount"))
        except MalformedWebhook:
            reported = None
        if (
            instructed.get("currency") != currency
            or reported is None
            or (amount is not None and reported != amount)
        ):
            log.error(
                "%s payment %s settled with %r, not %s %s: left pending",
                self.provider.code,
                result.provider_reference,
                instructed,
                amount,
                currency,
            )
            return ProviderResult(status=PENDING, provider_reference=result.provider_reference)
        if not payer:
            return result
        debtor = details.get("debtorAccount") or {}
        name = details.get("debtorName") or details.get("ultimateDebtor") or ""
        return ProviderResult(
            status=result.status,
            provider_reference=result.provider_reference,
            amount_received=reported,
            payer_instrument=PayerInstrument.of(
                "iban", debtor.get("iban") if isinstance(debtor, dict) else None
            ),
            payer_name=name[:140] if isinstance(name, str) else "",
        )

    def _fetch(self, *, payment_id, preferred, amount, currency, payer) -> ProviderResult | None:
        if not payment_id or not _PAYMENT_ID.fullmatch(payment_id):
            return None
        located = self._locate(payment_id, self._products(preferred))
        if located is None:
            return None
        product, status_payload = located
        result = self._status_result(payment_id, status_payload)
        if result.status != SUCCEEDED:
            return result
        details = self._get(product, payment_id) or {}
        return self._settled(result, details, amount=amount, currency=currency, payer=payer)

    def _initiated(self, response, *, product, amount, currency, payer: bool) -> ProviderResult:
        """The answer to a payment initiation."""
        if response.status_code != 201:
            # Refused: nothing was created. The reason is in the error body when it has one.
            code = _error_code(_json_or_empty(response)) or (
                "ACCESS_EXCEEDED" if response.status_code == 429 else f"HTTP_{response.status_code}"
            )
            return ProviderResult(
                status=FAILED, decline_code=code[:64], decline_kind=self.decline_kind(code)
            )
        payload = self._json(response)
        payment_id = payload.get("paymentId") if isinstance(payload, dict) else None
        if not isinstance(payment_id, str) or not _PAYMENT_ID.fullmatch(payment_id):
            # Created, but we cannot name it: the outcome is unknown until the bank tells us
            # (a notification carries our end-to-end id back).
            raise ProviderTimeout(
                f"{self.provider.code} created a payment without a usable paymentId.",
                provider=self.provider.code,
            )
        result = self._status_result(payment_id, payload, redirect_url=_sca_redirect(payload))
        if result.status != SUCCEEDED:
            return result
        # Settled at once (an SCA exemption applied): read who paid before we credit.
        details = self._get(product, payment_id) or {}
        return self._settled(result, details, amount=amount, currency=currency, payer=payer)

    # --- outgoing calls --------------------------------------------------------------------

    def _collection_account(self) -> tuple[str, str]:
        iban, name = self._option("creditor_iban"), self._option("creditor_name")
        if not iban or not name:
            raise ProviderUnavailable(
                f"{self.provider.code}: options.creditor_iban and creditor_name are required.",
                provider=self.provider.code,
            )
        return iban, name[:70]

    def start_payment(
        self, *, deposit, notify_url: str, return_url: str, payment_method: dict | None = None
    ) -> ProviderResult:
        if deposit.currency_id != "EUR":
            # SEPA credit transfers are euro only.
            return ProviderResult(
                status=FAILED, decline_code="CURRENCY_NOT_SUPPORTED", decline_kind="hard"
            )
        creditor_iban, creditor_name = self._collection_account()
        product = self._product("deposit_payment_product", DEFAULT_DEPOSIT_PRODUCT)
        payment = {
            # Our reference twice: end-to-end id (read back to find the deposit) and the
            # remittance text the operator's bank statement shows, for reconciliation.
            "endToEndIdentification": deposit.reference,
            "instructedAmount": {
                "currency": deposit.currency_id,
                "amount": money(deposit.amount, deposit.currency_id),
            },
            "creditorAccount": {"iban": creditor_iban},
            "creditorName": creditor_name,
            "remittanceInformationUnstructured": deposit.reference,
        }
        headers = {
            "PSU-IP-Address": self._psu_ip(deposit.ip),
            "TPP-Redirect-Preferred": "true",
            "TPP-Redirect-URI": return_url,
            # The cashier reads the deposit's status either way, so a refusal returns there too.
            "TPP-Nok-Redirect-URI": return_url,
            "TPP-Notification-URI": notify_url,
            "TPP-Notification-Content-Preferred": "status=LAST",
            # A casino deposit should fail at once rather than wait for funds to arrive.
            "TPP-Rejection-NoFunds-Preferred": "true",
        }
        response = self._call("POST", f"v1/payments/{product}", payload=payment, headers=headers)
        return self._initiated(
            response,
            product=product,
            amount=deposit.amount,
            currency=deposit.currency_id,
            payer=True,
        )

    def _outgoing(self, *, reference, amount, currency, creditor_iban, creditor_name, notify_url):
        """A credit transfer from the operator's account, which its bank executes without a
        PSU redirect under the SCA exemption for trusted beneficiaries / corporate payments."""
        if currency != "EUR":
            return ProviderResult(
                status=FAILED, decline_code="CURRENCY_NOT_SUPPORTED", decline_kind="hard"
            )
        debtor_iban, _ = self._collection_account()
        product = self._product("payout_payment_product", DEFAULT_PAYOUT_PRODUCT)
        payment = {
            "endToEndIdentification": reference,
            "debtorAccount": {"iban": debtor_iban},
            "instructedAmount": {"currency": currency, "amount": money(amount, currency)},
            "creditorAccount": {"iban": creditor_iban},
            "creditorName": creditor_name[:70],
            "remittanceInformationUnstructured": reference,
        }
        headers = {
            "PSU-IP-Address": self._psu_ip(None),
            "TPP-Redirect-Preferred": "false",
            "TPP-Notification-URI": notify_url,
            "TPP-Notification-Content-Preferred": "status=LAST",
        }
        if self._option("corporate_id"):
            headers["PSU-Corporate-ID"] = self._option("corporate_id")
        response = self._call("POST", f"v1/payments/{product}", payload=payment, headers=headers)
        result = self._initiated(
            response, product=product, amount=amount, currency=currency, payer=False
        )
        if result.redirect_url:
            # The bank did not grant the exemption: someone at the operator must authorise
            # it in the bank's portal. It stays pending until then (polling sees the result).
            log.warning("%s asks for SCA on outgoing payment %s", self.provider.code, reference)
        return result

    def start_payout(self, *, withdrawal, notify_url: str) -> ProviderResult:
        instrument = withdrawal.instrument
        return self._outgoing(
            reference=withdrawal.reference,
            amount=withdrawal.amount,
            currency=withdrawal.currency_id,
            creditor_iban=instrument.identifier,
            creditor_name=instrument.holder_name,
            notify_url=notify_url,
        )

    def refund(self, *, refund, notify_url: str) -> ProviderResult:
        """Back to the account the bank says the deposit came from (we keep only its
        fingerprint). A bank that no longer shows the payment's debtor fails the refund."""
        deposit = refund.deposit
        debtor = None
        preferred = self._product("deposit_payment_product", DEFAULT_DEPOSIT_PRODUCT)
        if deposit.provider_reference and _PAYMENT_ID.fullmatch(deposit.provider_reference):
            for product in self._products(preferred):
                details = self._get(product, deposit.provider_reference)
                if details is not None:
                    debtor = details
                    break
        account = (debtor or {}).get("debtorAccount") or {}
        iban = account.get("iban") if isinstance(account, dict) else None
        if not isinstance(iban, str) or not iban:
            return ProviderResult(
                status=FAILED, decline_code="DEBTOR_ACCOUNT_UNKNOWN", decline_kind="hard"
            )
        name = debtor.get("debtorName") or debtor.get("ultimateDebtor")
        if not isinstance(name, str) or not name.strip():
            name = deposit.player.full_name or deposit.player.external_id
        return self._outgoing(
            reference=refund.reference,
            amount=refund.amount,
            currency=deposit.currency_id,
            creditor_iban=iban,
            creditor_name=name,
            notify_url=notify_url,
        )

    def cancel_payment(self, *, deposit) -> ProviderResult | None:
        """DELETE the payment resource. 204: cancelled; 202: the bank wants the PSU to
        authorise the cancellation, which we cannot do, so it stays as it is; 405
        CANCELLATION_INVALID: too late (it may have been paid). Either way the answer is the
        status the bank then reports."""
        payment_id = deposit.provider_reference
        if not payment_id or not _PAYMENT_ID.fullmatch(payment_id):
            return None
        preferred = self._product("deposit_payment_product", DEFAULT_DEPOSIT_PRODUCT)
        located = self._locate(payment_id, self._products(preferred))
        if located is None:
            return None
        product, _ = located
        response = self._call("DELETE", self._payment_path(product, payment_id))
        if response.status_code not in (202, 204, 405):
            log.warning(
                "%s refused to cancel %s: %s %s",
                self.provider.code,
                payment_id,
                response.status_code,
                _error_code(_json_or_empty(response)),
            )
        return self._fetch(
            payment_id=payment_id,
            preferred=product,
            amount=deposit.amount,
            currency=deposit.currency_id,
            payer=True,
        )

    def fetch_payment_status(self, *, deposit) -> ProviderResult | None:
        """None without a paymentId: an initiation whose answer we never got cannot have been
        authorised by the player (they never saw the bank's page), so the janitor expires it."""
        return self._fetch(
            payment_id=deposit.provider_reference,
            preferred=self._product("deposit_payment_product", DEFAULT_DEPOSIT_PRODUCT),
            amount=deposit.amount,
            currency=deposit.currency_id,
            payer=True,
        )

    def fetch_payout_status(self, *, withdrawal) -> ProviderResult | None:
        return self._fetch(
            payment_id=withdrawal.provider_reference,
            preferred=self._product("payout_payment_product", DEFAULT_PAYOUT_PRODUCT),
            amount=withdrawal.amount,
            currency=withdrawal.currency_id,
            payer=False,
        )

    def fetch_refund_status(self, *, refund) -> ProviderResult | None:
        return self._fetch(
            payment_id=refund.provider_reference,
            preferred=self._product("payout_payment_product", DEFAULT_PAYOUT_PRODUCT),
            amount=refund.amount,
            currency=refund.deposit.currency_id,
            payer=False,
        )

    # --- notifications -------------------------------------------------------------------

    def verify_webhook(self, *, body: bytes, headers: dict[str, str]) -> None:
        """No signature exists to check (the bank does not sign notifications): a delivery is
        accepted when it is a notification naming one payment we can ask the bank about, and
        refused otherwise. Its content is never trusted (see parse_webhook)."""
        try:
            _notified_payment(body)
        except _NotANotification as exc:
            raise InvalidSignature(str(exc)) from None
        except Exception as exc:
            # The contract: InvalidSignature and nothing else, whatever the bytes (a nesting
            # deep enough for RecursionError included).
            raise InvalidSignature(f"Unreadable notification ({type(exc).__name__}).") from None

    def parse_webhook(self, *, body: bytes, headers: dict[str, str]) -> list[ProviderEvent]:
        """Fetch the named payment's status and details from the bank (signed, authenticated
        calls) and report what the bank says; the notification's own status is ignored. One
        event per delivery, PENDING while the bank has nothing final; an empty list when the
        bank does not know the payment."""
        try:
            payment_id, product_hint = _notified_payment(body)
        except (_NotANotification, ValueError, RecursionError) as exc:
            raise MalformedWebhook(str(exc)) from None
        preferred = product_hint or self._product(
            "deposit_payment_product", DEFAULT_DEPOSIT_PRODUCT
        )
        located = self._locate(payment_id, self._products(preferred))
        if located is None:
            return []
        product, status_payload = located
        result = self._status_result(payment_id, status_payload)
        details = self._get(product, payment_id)
        if details is None:
            return []
        reference = _our_reference(details)
        subject = next(
            (s for prefix, s in _SUBJECT_BY_PREFIX.items() if reference.startswith(prefix)), None
        )
        if subject is None:
            raise MalformedWebhook(f"payment {payment_id} carries no reference of ours")
        if result.status == SUCCEEDED:
            # SEPA credit transfers are euro only; the deposit's own amount is checked when
            # the inbox applies it (a smaller amount is an underpayment, never a full credit).
            result = self._settled(
                result, details, amount=None, currency="EUR", payer=subject == DEPOSIT
            )
        code = status_payload["transactionStatus"]
        return [
            ProviderEvent(
                subject=subject,
                event_type=f"transactionStatus {code}"[:64],
                dedup_key=f"{payment_id}:{code}",
                reference=reference,
                provider_reference=payment_id,
                result=result,
            )
        ]


def _json_or_empty(response):
    try:
        return response.json()
    except ValueError:
        return {}


def _sca_redirect(payload: dict) -> str:
    links = payload.get("_links")
    redirect = links.get("scaRedirect") if isinstance(links, dict) else None
    href = redirect.get("href") if isinstance(redirect, dict) else None
    if isinstance(href, str) and href.startswith(("https://", "http://")):
        return href
    return ""


def _error_code(payload) -> str:
    """The code of a Berlin Group error body: NextGenPSD2 `tppMessages` or RFC 7807 `code`."""
    if not isinstance(payload, dict):
        return ""
    messages = payload.get("tppMessages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict) and isinstance(message.get("code"), str):
                return message["code"]
    code = payload.get("code")
    return code if isinstance(code, str) else ""


def _our_reference(details: dict) -> str:
    for field in ("endToEndIdentification", "remittanceInformationUnstructured"):
        value = details.get(field)
        if isinstance(value, str) and value.strip():
            return value.strip()[:40]
    return ""


def _notified_payment(body: bytes) -> tuple[str, str]:
    """(paymentId, product named by the resource link or "") of a status notification."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _NotANotification("The notification is not JSON.") from None
    if not isinstance(payload, dict):
        raise _NotANotification("The notification is not a JSON object.")
    status = payload.get("transactionStatus")
    if status is not None and not (isinstance(status, str) and _STATUS_CODE.fullmatch(status)):
        raise _NotANotification("transactionStatus is not an ISO 20022 status code.")
    named = payload.get("paymentId")
    if named is not None and not (isinstance(named, str) and _PAYMENT_ID.fullmatch(named)):
        raise _NotANotification("paymentId is malformed.")
    linked, product = None, ""
    links = payload.get("_links")
    if isinstance(links, dict):
        for name in ("self", "status"):
            link = links.get(name)
            href = link.get("href") if isinstance(link, dict) else None
            if not isinstance(href, str):
                continue
            match = _RESOURCE.search(urlsplit(href).path)
            if match is None or not _PAYMENT_ID.fullmatch(match.group("id")):
                raise _NotANotification(f"_links.{name} is not a payment resource.")
            if linked is not None and match.group("id") != linked:
                raise _NotANotification("The links name two payments.")
            linked = match.group("id")
            if match.group("product") in SEPA_PRODUCTS:
                product = match.group("product")
    if named and linked and named != linked:
        raise _NotANotification("paymentId and the resource link name two payments.")
    payment_id = named or linked
    if not payment_id:
        raise _NotANotification("The notification names no payment.")
    return payment_id, product
