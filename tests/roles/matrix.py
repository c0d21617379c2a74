"""The documented role matrix (docs/roles.md, the one place it is written) and what the admin
actually lets a member of each group do on each page."""

import re
from pathlib import Path

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import RequestFactory

DOC = Path(__file__).resolve().parents[2] / "docs" / "roles.md"
ROLES = ["Operator", "Finance", "Compliance officer", "Supervisor"]
RIGHTS = ("view", "add", "change", "delete")
_ROW = re.compile(r"^\|\s*`([a-z_]+\.[a-z_]+)`\s*\|(.*)\|\s*$")


def documented() -> dict[str, dict[str, frozenset[str]]]:
    """page (app_label.model) -> role -> what the role may do there: rights and action names.
    Read from the table between the ROLE-MATRIX markers of docs/roles.md."""
    text = DOC.read_text()
    table = text.split("<!-- ROLE-MATRIX:BEGIN -->")[1].split("<!-- ROLE-MATRIX:END -->")[0]
    lines = [line for line in table.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[1:] == ROLES, f"docs/roles.md columns are {header[1:]}, expected {ROLES}"
    matrix = {}
    for line in lines[2:]:
        match = _ROW.match(line)
        assert match, f"docs/roles.md: cannot read the row {line!r}"
        cells = [cell.strip() for cell in match.group(2).split("|")]
        assert len(cells) == len(ROLES), f"docs/roles.md: {match.group(1)} needs {len(ROLES)} cells"
        cells_by_role = zip(ROLES, cells, strict=True)
        matrix[match.group(1)] = {role: parse_cell(cell) for role, cell in cells_by_role}
    return matrix


def parse_cell(cell: str) -> frozenset[str]:
    """`—` nothing; else rights separated by spaces, then actions after `+`:
    `view change + approve reject`."""
    if cell in ("—", "-", ""):
        return frozenset()
    rights, _, actions = cell.partition("+")
    words = rights.split()
    unknown = set(words) - set(RIGHTS)
    assert not unknown, f"docs/roles.md: {sorted(unknown)} are not rights ({RIGHTS})"
    return frozenset(words) | {f"+{name}" for name in actions.split()}


def member_of(role: str):
    user = get_user_model().objects.create_user(
        f"{role.lower().replace(' ', '-')}", password="pw-for-role-tests-1", is_staff=True
    )
    user.groups.add(Group.objects.get(name=role))
    return get_user_model().objects.get(pk=user.pk)  # fresh: no cached permissions


def allowed(user, model_admin) -> frozenset[str]:
    """What the admin grants `user` on this page: rights and the actions it offers."""
    request = RequestFactory().get("/admin/")
    request.user = user
    rights = {right for right in RIGHTS if getattr(model_admin, f"has_{right}_permission")(request)}
    actions = set()
    if "view" in rights or "change" in rights:
        actions = {f"+{name}" for name in model_admin.get_actions(request)}
    return frozenset(rights | actions)


def page(model_admin) -> str:
    return model_admin.model._meta.label_lower


def registered():
    return dict(sorted((page(a), a) for a in admin.site._registry.values()))
