"""Import one module first, in a fresh interpreter, and see what it pulls in.

`django.setup()` normally runs every app's `ready()`, and compliance's (receivers) and the
admin's (autodiscovery) import nearly everything, so inside the test process every module is
already loaded and an import cycle or a wrong dependency cannot show. Here each app config's
`ready()` is skipped: the app registry and the models load as usual, and then only the
module under test, and whatever it imports, is loaded on top.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
OUR_APPS = ("config", "wallets", "compliance", "payments", "reconciliation")

_PROBE = """
import importlib, json, sys
import django
from django.apps import config as app_config

_create = app_config.AppConfig.create.__func__

def create(cls, entry):
    app = _create(cls, entry)
    app.ready = lambda: None
    return app

app_config.AppConfig.create = classmethod(create)
django.setup()
ours = {ours!r}
before = {{m for m in sys.modules if m.split(".")[0] in ours}}
importlib.import_module({module!r})
after = {{m for m in sys.modules if m.split(".")[0] in ours}}
print(json.dumps({{"before": sorted(before), "loaded": sorted(after - before)}}))
"""


def import_alone(module: str) -> dict[str, list[str]]:
    """Import `module` first in a new interpreter (after the app registry is ready).

    Returns the project modules loaded before it ("before": app configs and models) and the
    ones its import loaded ("loaded"). An import error, a cycle among them included, fails
    with the child's traceback.
    """
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PYTHONPATH": str(REPOSITORY),
    }
    result = subprocess.run(  # noqa: S603 (this interpreter, our own probe)
        [sys.executable, "-c", _PROBE.format(module=module, ours=OUR_APPS)],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"importing {module} alone failed:\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])
