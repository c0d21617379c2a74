"""The cashier demo page: what a casino frontend does, in one server-rendered page.

Staff only (it moves money for any player): pick a player, start a deposit through the same
service the API uses, follow the sandbox provider's hosted page, come back and see the wallet.
Mounted only with the sandbox (SANDBOX_ENABLED).
"""

import uuid
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import redirect, render
from django.urls import reverse

from inputs.forms import AmountFormField
from wallets import selectors
from wallets.client_ip import client_ip
from wallets.errors import DomainError
from wallets.models import Currency, Player

from .. import services
from ..models import Deposit, PaymentMethod


class DepositForm(forms.Form):
    method = forms.ModelChoiceField(
        PaymentMethod.objects.filter(is_enabled=True, provider__is_enabled=True),
        to_field_name="code",
    )
    currency = forms.ModelChoiceField(Currency.objects.all())
    amount = AmountFormField(help_text="Magic amounts choose a scenario.")


def _player_returned(request, player) -> None:
    """Back from the provider's page: hand the provider what the redirect carried (Adyen's
    `redirectResult`; elsewhere the connector just asks for the status), as a casino frontend
    does with `POST /api/v1/deposits/{reference}/details`."""
    deposit = Deposit.objects.filter(player=player, idempotency_key=request.GET["attempt"]).first()
    if deposit is None:
        return
    details = {
        name: value for name, value in request.GET.items() if name not in ("player", "attempt")
    }
    try:
        services.submit_payment_details(deposit=deposit, details=details)
    except DomainError as refusal:
        messages.error(request, f"{refusal.code}: {refusal.message}")


@staff_member_required
def cashier(request):
    all_players = Player.objects.order_by("external_id")
    players = all_players[:100]
    player = all_players.filter(external_id=request.GET.get("player")).first() or players.first()
    form = DepositForm(request.POST or None)
    if player is not None and request.method == "GET" and request.GET.get("attempt"):
        _player_returned(request, player)
    if player is not None and request.method == "POST" and form.is_valid():
        back = request.build_absolute_uri(f"{reverse('cashier')}?player={player.external_id}")
        attempt = f"cashier-{uuid.uuid4()}"
        try:
            deposit = services.create_deposit(
                player=player,
                method_code=form.cleaned_data["method"].code,
                amount=form.cleaned_data["amount"],
                currency=form.cleaned_data["currency"].code,
                idempotency_key=attempt,
                # The provider sends the player back here, to the attempt that left.
                return_url=f"{back}&{urlencode({'attempt': attempt})}",
                ip=client_ip(request),
            )
        except DomainError as refusal:
            reasons = ", ".join(refusal.details.get("reasons", []))
            messages.error(
                request,
                f"Refused ({refusal.code}): {refusal.message}"
                + (f" [{reasons}]" if reasons else ""),
            )
            return redirect(back)
        if deposit.redirect_url:
            return redirect(deposit.redirect_url)
        messages.info(request, f"Deposit {deposit.reference}: {deposit.status}")
        return redirect(back)
    return render(
        request,
        "payments/cashier.html",
        {
            "players": players,
            "player": player,
            "form": form,
            "balances": selectors.player_balances(player) if player else [],
            "deposits": Deposit.objects.filter(player=player).order_by("-id")[:10],
        },
    )
