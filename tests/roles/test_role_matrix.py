"""Every group on every admin page does exactly what docs/roles.md says: the changelist and
add page answer 200 or 403, the admin grants the documented rights and offers the documented
actions. The groups come from the migrations alone (the test database is migrated)."""

import pytest
from django.test import Client

from tests.roles import matrix

DOCUMENTED = matrix.documented()
CASES = [(page, role) for page in DOCUMENTED for role in matrix.ROLES]

pytestmark = pytest.mark.django_db


def test_every_admin_page_is_in_the_documented_matrix():
    assert sorted(matrix.registered()) == sorted(DOCUMENTED)


@pytest.mark.parametrize(("page", "role"), CASES, ids=[f"{p}-{r}" for p, r in CASES])
def test_the_role_may_do_on_the_page_exactly_what_the_docs_say(page, role):
    model_admin = matrix.registered()[page]
    user = matrix.member_of(role)
    expected = DOCUMENTED[page][role]
    assert matrix.allowed(user, model_admin) == expected

    client = Client()
    client.force_login(user)
    app_label, model = page.split(".")
    changelist = client.get(f"/admin/{app_label}/{model}/")
    assert changelist.status_code == (200 if "view" in expected else 403)
    add = client.get(f"/admin/{app_label}/{model}/add/")
    # Without the right the add page refuses (403, or a redirect where the admin sends the
    # user back instead, like the bonus grant form).
    assert (add.status_code == 200) == ("add" in expected)


def test_the_operator_opens_the_review_queue_and_decides_with_its_own_permission():
    operator = matrix.member_of("Operator")
    assert operator.has_perm("payments.view_withdrawalreviewqueue")
    assert operator.has_perm("payments.review_withdrawals")
    # Deciding is a service call, never an edit of the withdrawal row.
    assert not operator.has_perm("payments.change_withdrawal")


def test_finance_has_the_reconciliation_permissions_the_docs_name():
    finance = matrix.member_of("Finance")
    for codename in ("add_settlementimport", "add_reconciliationrun", "change_break"):
        assert finance.has_perm(f"reconciliation.{codename}")
    assert finance.has_perm("reconciliation.approve_write_off")


def test_a_cell_is_read_as_rights_then_actions():
    assert matrix.parse_cell("—") == frozenset()
    assert matrix.parse_cell("view change + approve reject") == {
        "view",
        "change",
        "+approve",
        "+reject",
    }
    with pytest.raises(AssertionError):
        matrix.parse_cell("view approve")
