"""A list update re-screens every player: the importer on a small list in OFAC's format."""

import pytest

from compliance import screening, services
from compliance.errors import SanctionsListUnavailable
from compliance.models import Alert, SanctionsEntity, SanctionsImport
from config.celery import app as celery_app
from tests.compliance.factories import make_player

pytestmark = pytest.mark.django_db

SDN = (
    '101,"PETROV, Ivan Sergeyevich","individual","UKRAINE-EO13661",-0- ,-0- ,-0- ,-0- ,-0- ,'
    '-0- ,-0- ,"DOB 03 Mar 1961; nationality Russia."\n'
    '102,"EXAMPLE SHIPPING LTD",-0- ,"IRAN",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \n'
)
NEW_ENTRY = (
    '103,"KOWALCZYK, Jadwiga","individual","SDGT",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,"DOB 1970."\n'
)
ALT = '101,201,"aka","PETROFF, John",-0- \n'
ADD = '101,301,-0- ,"Moscow","Russia",-0- \n'


def write_list(directory, sdn):
    directory.mkdir(exist_ok=True)
    (directory / "sdn.csv").write_text(sdn)
    (directory / "alt.csv").write_text(ALT)
    (directory / "add.csv").write_text(ADD)
    return directory


@pytest.fixture
def eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def test_a_changed_list_rescreens_every_player(
    tmp_path, eager_tasks, django_capture_on_commit_callbacks
):
    listed_later = make_player(first_name="Jadwiga", last_name="Kowalczyk")
    directory = write_list(tmp_path / "ofac", SDN)
    with django_capture_on_commit_callbacks(execute=True):
        first = services.import_sdn(directory=directory)
    assert (first.entity_count, first.name_count) == (2, 3)
    entity = SanctionsEntity.objects.get(source_id="101")
    assert (entity.dates_of_birth, entity.countries) == (["1961-03-03"], ["RU"])
    assert not Alert.objects.filter(player=listed_later).exists()

    write_list(directory, SDN + NEW_ENTRY)
    with django_capture_on_commit_callbacks(execute=True):
        second = services.import_sdn(directory=directory)
    assert second.entity_count == 3
    alert = Alert.objects.get(player=listed_later, rule__kind="sanctions_match")
    assert alert.details["listed_id"] == "103"


def test_an_import_told_not_to_rescreen_screens_nobody(
    tmp_path, eager_tasks, django_capture_on_commit_callbacks
):
    listed = make_player(first_name="Ivan", last_name="Petrov")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.import_sdn(directory=write_list(tmp_path / "ofac", SDN), rescreen=False)
    assert callbacks == [screening.invalidate_index]
    assert not Alert.objects.filter(player=listed).exists()
    # The same list, imported again with a re-screen, finds him.
    with django_capture_on_commit_callbacks(execute=True):
        services.import_sdn(directory=tmp_path / "ofac", force=True)
    assert Alert.objects.get(player=listed, rule__kind="sanctions_match").details["listed_id"] == (
        "101"
    )


def test_alias_from_alt_csv_matches(tmp_path, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.import_sdn(directory=write_list(tmp_path / "ofac", SDN), rescreen=False)
    [match] = screening.match_name("John Petroff")
    assert (match.source_id, match.matched_name) == ("101", "PETROFF, John")


def test_missing_files_are_a_clear_error_and_nothing_is_imported(tmp_path):
    with pytest.raises(SanctionsListUnavailable):
        services.import_sdn(directory=tmp_path)
    assert not SanctionsImport.objects.exists()
