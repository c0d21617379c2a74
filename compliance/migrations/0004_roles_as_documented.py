"""The roles as docs/roles.md documents them. Migration 0002 created the groups and promised
that payments and reconciliation would add their permissions; neither did, so the Operator
could not open the withdrawal review queue and Finance had no reconciliation permission.

Operator: the payments desk — every payments page read-only, the review queue with its own
permission to approve or reject (four-eyes still enforced by the service), refunds and accepting
held deposits (add_refund), re-sending casino notifications (change_notification).
Finance: reconciliation — upload reports, start runs, work and approve write-offs (a second
user; the service refuses the same one), edit provider policies and report formats, read every
reconciliation page; reads deposits, withdrawals, refunds, chargebacks and providers.
Officers and supervisors are unchanged.

Only adds; backwards removes exactly what it added. tests/roles/ checks the groups and every
admin page against the table in docs/roles.md."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

_PAYMENTS_READ = [
    "view_paymentprovider",
    "view_paymentmethod",
    "view_deposit",
    "view_withdrawal",
    "view_refund",
    "view_chargeback",
    "view_paymenttransition",
]

GRANTS = {
    "Operator": [
        ("payments", c)
        for c in [
            *_PAYMENTS_READ,
            "view_withdrawalreviewqueue",
            "review_withdrawals",
            "view_withdrawalapproval",
            "view_payoutinstrument",
            "add_refund",
            "view_webhookevent",
            "view_providereventkey",
            "view_notification",
            "view_notificationattempt",
            "change_notification",
        ]
    ],
    "Finance": [("payments", c) for c in _PAYMENTS_READ]
    + [
        ("reconciliation", c)
        for c in [
            "view_settlementimport",
            "add_settlementimport",
            "view_settlementline",
            "view_linematch",
            "view_reconciliationrun",
            "add_reconciliationrun",
            "view_settlementposting",
            "view_break",
            "change_break",
            "view_breaktransition",
            "approve_write_off",
            "view_providerpolicy",
            "add_providerpolicy",
            "change_providerpolicy",
            "view_reportformat",
            "add_reportformat",
            "change_reportformat",
            "view_integrityrun",
            "view_integrityalert",
        ]
    ],
}


def _permissions(apps, grants):
    # Permissions are normally created after migrate; the groups need them now (the review
    # queue's review_withdrawals was added by payments 0011 a moment ago).
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    return [
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
        for app_label, codename in grants
    ]


def grant(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for role, grants in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.add(*_permissions(apps, grants))


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for role, grants in GRANTS.items():
        group = Group.objects.filter(name=role).first()
        if group is not None:
            group.permissions.remove(*_permissions(apps, grants))


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0003_keyed_instrument_fingerprints"),
        ("payments", "0011_keyed_instrument_fingerprints"),
        ("reconciliation", "0009_report_formats"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
