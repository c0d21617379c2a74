import shutil
import subprocess
from datetime import date
from decimal import Decimal

import pytest
from django.conf import settings

from compliance import screening, services
from compliance.models import Alert, SanctionsEntity, SanctionsImport, SanctionsName
from tests.compliance.factories import make_player, officer

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def sdn_list(django_db_setup, django_db_blocker):
    """The real OFAC snapshot, imported once for the module (read-only in these tests)."""
    with django_db_blocker.unblock():
        record = services.import_sdn(force=True)
    yield record
    with django_db_blocker.unblock():
        SanctionsName.objects.all().delete()
        SanctionsEntity.objects.all().delete()
        SanctionsImport.objects.all().delete()
    screening._Index.invalidate()


def listed_ids(name, **qualifiers) -> list[str]:
    return [m.source_id for m in screening.match_name(name, **qualifiers)]


def test_the_default_list_is_the_snapshot_inside_the_repository():
    assert screening.data_dir() == settings.BASE_DIR / "data" / "ofac"
    # The snapshot travels with a clone: its files are tracked by git, with their README.
    git = shutil.which("git")
    assert git, "git is needed to check what a clone carries"
    tracked = subprocess.run(  # noqa: S603 (git, found on PATH, with fixed arguments)
        [git, "ls-files", "data/ofac"],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(tracked) == [
        "data/ofac/README.md",
        "data/ofac/add.csv",
        "data/ofac/alt.csv",
        "data/ofac/sdn.csv",
    ]


def test_import_keeps_every_entry_and_alias(sdn_list):
    assert (sdn_list.entity_count, sdn_list.name_count) == (7379, 17061)
    abbas = SanctionsEntity.objects.get(source_id="2674")
    assert abbas.entity_type == "individual"
    assert abbas.dates_of_birth == ["1948-12-10"]
    assert set(abbas.names.values_list("name", "kind")) == {
        ("ABBAS, Abu", "primary"),
        ("ZAYDAN, Muhammad", "aka"),
    }
    assert SanctionsEntity.objects.get(source_id="10591").countries == ["BE"]


def test_an_unchanged_list_is_not_imported_again(sdn_list):
    assert services.import_sdn() is None
    assert SanctionsImport.objects.count() == 1


@pytest.mark.parametrize(
    "name",
    [
        "NORIEGA, Manuel Antonio",  # exact, as listed
        "Manuel Antonio Noriega",  # reordered
        "Manuel Antonio Noriéga",  # accented
        "Mr. Manuel Noriega",  # honorific, middle name missing
    ],
)
def test_listed_person_is_found_however_the_name_is_written(sdn_list, name):
    assert listed_ids(name)[0] == "1572"


def test_alias_of_a_listed_person_is_found(sdn_list):
    match = screening.match_name("Muhammad Zaydan")[0]
    assert (match.source_id, match.matched_name, match.score) == ("2674", "ZAYDAN, Muhammad", 1.0)


@pytest.mark.parametrize(
    "name",
    ["John Smith", "Anna Schmidt", "Peter Jones", "David Brown", "Sarah Johnson", "Emma Müller"],
)
def test_common_names_that_are_not_listed_do_not_hit(sdn_list, name):
    assert screening.match_name(name) == []


def test_threshold_setting_is_respected(sdn_list, settings):
    assert listed_ids("Manuel Norega") == ["1572"]  # scores 0.83
    settings.COMPLIANCE_SCREENING_THRESHOLD = 0.90
    assert listed_ids("Manuel Norega") == []
    assert listed_ids("Manuel Antonio Noriega") == ["1572"]


def test_date_of_birth_and_country_qualify_the_score(sdn_list):
    same = screening.match_name("Tom Michielsen", date_of_birth=date(1975, 12, 22), country="BE")
    assert (same[0].score, same[0].qualifiers) == (1.0, ("dob_exact", "country"))
    other = screening.match_name("Tom Michielsen", date_of_birth=date(1991, 3, 1))
    assert (other[0].score, other[0].qualifiers) == (0.85, ("dob_mismatch",))
    assert (
        screening.match_name("Tom Michielsen", date_of_birth=date(1991, 3, 1), threshold=0.9) == []
    )


def test_only_individuals_are_screened(sdn_list):
    assert screening.match_name("Banco Nacional de Cuba") == []


def test_normalization_and_remark_parsing():
    assert screening.normalize_name("Dr. José  O'Brien-García") == "jose obrien garcia"
    assert screening.parse_dates_of_birth("DOB 10 Dec 1948; alt. DOB 1949; POB Haifa") == [
        "1948-12-10",
        "1949",
    ]
    assert screening.parse_countries("nationality Syria; citizen Iraq.", ["Lebanon"]) == [
        "IQ",
        "LB",
        "SY",
    ]


# --- hits block withdrawals ----------------------------------------------------------------


def assess_withdrawal(player):
    return services.assess_withdrawal(
        player=player, amount=Decimal("50.00"), currency="EUR", method="card"
    )


def test_a_hit_blocks_withdrawals_until_an_officer_clears_it(sdn_list):
    player = make_player(first_name="Manuel", last_name="Noriega")
    [alert] = services.screen_player(player=player)
    assert alert.rule.kind == "sanctions_match"
    assert alert.details["listed_id"] == "1572"
    # The pending hit also makes the player high risk (enhanced due diligence).
    assert assess_withdrawal(player).reasons[0] == "withdrawals_blocked"
    services.resolve_alert(alert=alert, actor=officer(), confirm=False, note="Different DOB, ID")
    assert assess_withdrawal(player).is_allowed
    # Screening again (a list update) does not raise the cleared match again.
    assert services.screen_player(player=player) == []


def test_a_confirmed_hit_freezes_the_player_and_keeps_withdrawals_blocked(sdn_list):
    player = make_player(first_name="Tom", last_name="Michielsen")
    [alert] = services.screen_player(player=player)
    services.resolve_alert(alert=alert, actor=officer(), confirm=True, note="Passport matches")
    player.refresh_from_db()
    assert player.status == "frozen"
    assert Alert.objects.get(pk=alert.pk).status == "confirmed"
    assert services.risk_level(player) == "high"
    assert assess_withdrawal(player).reasons == [
        "withdrawals_blocked",
        "enhanced_due_diligence_required",
    ]


def test_rescreening_everyone_finds_the_listed_and_skips_the_rest(sdn_list):
    make_player(first_name="Abu", last_name="Abbas")
    make_player(first_name="Laura", last_name="Rossi")
    assert services.rescreen_all_players() == 2
    assert Alert.objects.filter(rule__kind="sanctions_match").count() == 1


def test_registration_is_screened_after_commit_and_a_freeze_is_not(
    sdn_list, django_capture_on_commit_callbacks
):
    from config.celery import app as celery_app
    from wallets import services as wallet_services

    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            player = wallet_services.register_player(
                external_id="listed-1", first_name="Manuel Antonio", last_name="Noriega"
            )
        assert Alert.objects.filter(player=player, rule__kind="sanctions_match").count() == 1
        with django_capture_on_commit_callbacks() as callbacks:
            wallet_services.freeze_player(player=player, actor=None, reason="test")
        assert callbacks == []
    finally:
        celery_app.conf.task_always_eager = False
