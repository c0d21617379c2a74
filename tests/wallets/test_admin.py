from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from tests.wallets.factories import PlayerFactory, fund
from wallets.models import Account, JournalEntry, Player

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client):
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-not-used")
    client.force_login(user)
    client.user = user
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/admin/wallets/player/",
        "/admin/wallets/account/",
        "/admin/wallets/journalentry/",
        "/admin/wallets/currency/",
        "/admin/wallets/playerstatuschange/",
        "/admin/wallets/player/?q=searchme&status__exact=active",
    ],
)
def test_operator_console_pages_render(operator_client, url):
    fund(PlayerFactory(email="searchme@example.com"), "10.00")
    assert operator_client.get(url).status_code == 200


def test_entry_page_shows_its_postings_read_only(operator_client):
    entry = fund(PlayerFactory(), "10.00")
    page = operator_client.get(f"/admin/wallets/journalentry/{entry.pk}/change/")
    assert page.status_code == 200
    assert b"10.00000000" in page.content
    assert (
        operator_client.post(f"/admin/wallets/journalentry/{entry.pk}/delete/").status_code == 403
    )
    assert operator_client.get("/admin/wallets/posting/add/").status_code == 404
    assert operator_client.get("/admin/wallets/journalentry/add/").status_code == 403


def test_freeze_action_asks_for_a_reason_then_goes_through_the_service(operator_client):
    player = PlayerFactory()
    form = {"action": "freeze", "_selected_action": [player.pk]}
    first = operator_client.post("/admin/wallets/player/", form)
    assert first.status_code == 200 and b"reason" in first.content
    player.refresh_from_db()
    assert player.status == Player.Status.ACTIVE

    operator_client.post("/admin/wallets/player/", {**form, "apply": "1", "reason": "fraud check"})
    player.refresh_from_db()
    assert player.status == Player.Status.FROZEN
    change = player.status_changes.get()
    assert (change.reason, change.actor) == ("fraud check", operator_client.user)


def test_adjustment_action_posts_an_entry_with_the_operator_as_actor(operator_client):
    player = PlayerFactory()
    operator_client.post(
        "/admin/wallets/player/",
        {
            "action": "adjust_balance",
            "_selected_action": [player.pk],
            "apply": "1",
            "currency": "EUR",
            "account_kind": Account.Kind.PLAYER_CASH,
            "amount": "15.25",
            "reason": "goodwill",
        },
    )
    entry = JournalEntry.objects.get(kind=JournalEntry.Kind.MANUAL_ADJUSTMENT)
    assert entry.actor == operator_client.user
    assert Account.objects.get(owner=player, kind=Account.Kind.PLAYER_CASH).balance == Decimal(
        "15.25"
    )
