"""A clone with nothing beside it screens players: the OFAC list travels with the repository.

The committed HEAD is cloned into an empty temporary folder (no `shared/` next to it) and the
suite's screening tests run there, on the clone's own code and data, with this test run's
virtualenv (by absolute path: installing it again would only test pip) and database server
(under another database name, so the two runs never share a test database).
"""

import os
import re
import shutil
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

SCREENING_TESTS = [
    "tests/compliance/test_screening.py",
    "tests/compliance/test_sanctions_update.py",
]


def run(command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, check=True, **kwargs)  # noqa: S603


def _another_database(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/') or '/casino'}_fresh_clone"))


def test_a_fresh_clone_runs_the_screening_tests_with_nothing_beside_it(tmp_path):
    git = shutil.which("git")
    assert git, "git is needed to clone the repository"
    head = run([git, "rev-parse", "HEAD"], cwd=settings.BASE_DIR).stdout.strip()
    workplace = tmp_path / "empty"
    workplace.mkdir()
    clone = workplace / "repository"
    # --no-hardlinks: the clone owns its objects; the commit is checked out by id, so a
    # linked worktree's branch is tested, not the main repository's HEAD.
    run([git, "clone", "--quiet", "--no-checkout", "--no-hardlinks", settings.BASE_DIR, clone])
    run([git, "checkout", "--quiet", "--detach", head], cwd=clone)
    assert sorted(p.name for p in workplace.iterdir()) == ["repository"]
    assert not (clone / ".venv").exists()

    env = {
        key: value
        for key, value in os.environ.items()
        # The clone must find everything itself: no list location, no path to this checkout.
        if key not in ("OFAC_DATA_DIR", "PYTHONPATH", "DJANGO_SETTINGS_MODULE")
    }
    env["DATABASE_URL"] = _another_database(os.environ["DATABASE_URL"])
    result = subprocess.run(  # noqa: S603 (this interpreter, fixed arguments)
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *SCREENING_TESTS],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert f"rootdir: {clone}" in output
    summary = output.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 25, summary
    assert not re.search(r"\d+ (failed|error|errors|skipped)\b", summary), summary
