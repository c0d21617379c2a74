"""Instrument fingerprints are keyed HMACs, versioned, and grouping survives a key rotation:
compliance's shared-instrument rule links a player seen before the rotation with one seen
after it, the ledger keeps what it wrote, and the stored copies are upgraded in place."""

import hashlib

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from compliance import monitoring
from compliance.models import Alert, InstrumentUse
from payments import services
from payments.instruments import instrument_fingerprint
from payments.models import Deposit
from tests.payments.factories import fund, key, make_player, without_minimal_play_rule
from wallets import fingerprints
from wallets.models import JournalEntry

IBAN = "DE89 3704 0044 0532 0130 00"
K1, K2 = "1:" + "k" * 43, "2:" + "q" * 43

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def providers():
    # Pointed at a closed port: nothing here needs a provider to answer.
    return services.ensure_sandbox_providers(base_url="http://127.0.0.1:9")


def withdraw_to(player, iban=IBAN):
    instrument = services.add_payout_instrument(
        player=player, kind="iban", identifier=iban, holder_name="P"
    )
    fund(player, "200.00")
    return services.request_withdrawal(
        player=player, instrument=instrument, amount="50.00", currency="EUR", idempotency_key=key()
    )


def shared_alerts(player):
    return list(Alert.objects.filter(player=player, rule__kind="shared_instrument"))


def ledger_fingerprints(player) -> set[str]:
    return {
        entry.metadata.get("instrument_fingerprint")
        for entry in JournalEntry.objects.filter(postings__account__owner=player).distinct()
        if entry.metadata.get("instrument_fingerprint")
    }


def test_a_fingerprint_is_a_keyed_versioned_hmac_not_a_plain_hash():
    plain = hashlib.sha256(f"iban:{IBAN.replace(' ', '')}".encode()).hexdigest()
    with override_settings(INSTRUMENT_FINGERPRINT_KEYS=[K1]):
        under_k1 = instrument_fingerprint("iban", IBAN)
        assert instrument_fingerprint("iban", IBAN.replace(" ", "").lower()) == under_k1
    with override_settings(INSTRUMENT_FINGERPRINT_KEYS=["1:" + "z" * 43]):
        under_other = instrument_fingerprint("iban", IBAN)
    assert under_k1.startswith("v1:") and len(under_k1) == 67
    assert plain not in under_k1 and under_k1 != under_other


def test_any_older_version_upgrades_to_what_the_current_keys_compute():
    plain = hashlib.sha256(f"iban:{IBAN.replace(' ', '')}".encode()).hexdigest()
    with override_settings(INSTRUMENT_FINGERPRINT_KEYS=[K1]):
        v1 = instrument_fingerprint("iban", IBAN)
        assert fingerprints.upgrade(plain) == v1
    with override_settings(INSTRUMENT_FINGERPRINT_KEYS=[K1, K2]):
        v2 = instrument_fingerprint("iban", IBAN)
        assert v2.startswith("v2:")
        assert fingerprints.upgrade(v1) == fingerprints.upgrade(plain) == v2
        assert fingerprints.upgrade(v2) == v2
        # Not ours (another system's id, a test label): left alone, never mangled.
        assert fingerprints.upgrade("card-7") == "card-7"


@pytest.mark.parametrize(
    "keys", [["2:" + "k" * 43], ["1:" + "k" * 43, "3:" + "q" * 43], ["k" * 43], ["1:short"]]
)
def test_a_key_list_with_a_gap_or_a_bad_entry_is_refused(keys):
    with override_settings(INSTRUMENT_FINGERPRINT_KEYS=keys), pytest.raises(ImproperlyConfigured):
        instrument_fingerprint("iban", IBAN)


def test_the_shared_instrument_rule_links_players_across_a_key_rotation():
    without_minimal_play_rule()
    alice, bob = make_player(), make_player()
    with override_settings(INSTRUMENT_FINGERPRINT_KEYS=[K1]):
        withdraw_to(alice)
        monitoring.evaluate_players([alice.pk])
        before = InstrumentUse.objects.get(player=alice).fingerprint
        assert before.startswith("v1:")
    with override_settings(INSTRUMENT_FINGERPRINT_KEYS=[K1, K2]):
        with pytest.raises(CommandError):
            call_command("refingerprint_instruments", "--check")
        call_command("refingerprint_instruments")
        call_command("refingerprint_instruments", "--check")
        current = instrument_fingerprint("iban", IBAN)
        assert InstrumentUse.objects.get(player=alice).fingerprint == current
        withdraw_to(bob)
        monitoring.evaluate_players([bob.pk])
        (alert,) = shared_alerts(bob)
        assert alert.details["instrument"] == current
        assert alert.details["other_players"] == [alice.pk]
    # The ledger is append-only: alice's entry keeps what it was written with.
    assert ledger_fingerprints(alice) == {before}
    assert ledger_fingerprints(bob) == {current}


def test_without_the_rewrite_the_index_would_miss_the_link():
    """The control for the test above: the upgrade of stored rows is what carries the link."""
    without_minimal_play_rule()
    alice, bob = make_player(), make_player()
    with override_settings(INSTRUMENT_FINGERPRINT_KEYS=[K1]):
        withdraw_to(alice)
        monitoring.evaluate_players([alice.pk])
    with override_settings(INSTRUMENT_FINGERPRINT_KEYS=[K1, K2]):
        withdraw_to(bob)
        monitoring.evaluate_players([bob.pk])
        assert shared_alerts(bob) == []


def test_a_known_sharing_is_not_alerted_again_after_the_rotation():
    without_minimal_play_rule()
    alice, bob = make_player(), make_player()
    with override_settings(INSTRUMENT_FINGERPRINT_KEYS=[K1]):
        withdraw_to(alice)
        withdraw_to(bob)
        monitoring.evaluate_players([alice.pk, bob.pk])
        assert len(shared_alerts(alice)) == len(shared_alerts(bob)) == 1
    with override_settings(INSTRUMENT_FINGERPRINT_KEYS=[K1, K2]):
        call_command("refingerprint_instruments")
        # Ledger entries still say v1: compliance reads them on the current version.
        monitoring.evaluate_players([alice.pk, bob.pk])
        current = instrument_fingerprint("iban", IBAN)
        for player in (alice, bob):
            (alert,) = shared_alerts(player)
            assert alert.dedup_key == f"instrument:{current}"


def test_stored_deposit_fingerprints_are_upgraded_and_still_find_the_deposit():
    player = make_player()
    services.create_deposit(
        player=player, method_code="card", amount="10.00", currency="EUR", idempotency_key=key()
    )
    legacy = hashlib.sha256(f"iban:{IBAN.replace(' ', '')}".encode()).hexdigest()
    Deposit.objects.filter(player=player).update(
        payer_instrument_type="iban", payer_instrument_fingerprint=legacy
    )
    with override_settings(INSTRUMENT_FINGERPRINT_KEYS=[K1, K2]):
        call_command("refingerprint_instruments")
        current = instrument_fingerprint("iban", IBAN)
        assert Deposit.objects.get(player=player).payer_instrument_fingerprint == current
        call_command("refingerprint_instruments", "--check")
