"""Seed the AML rules (officers tune them in the admin), the staff roles with least
privilege, and the beat schedules of the monitoring and KYC jobs."""

from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations

RULES = [
    # code, name, kind, category, score, parameters
    (
        "large-transaction",
        "Single deposit or withdrawal of €2,000 or more",
        "large_transaction",
        "aml",
        20,
        {"threshold_eur": "2000"},
    ),
    (
        "cumulative-deposits",
        "Deposits of €5,000 or more in 7 days",
        "cumulative_deposits",
        "aml",
        20,
        {"threshold_eur": "5000", "window_hours": 168},
    ),
    (
        "structuring",
        "Three or more deposits just below €2,000 within 48 hours",
        "structuring",
        "aml",
        30,
        {"threshold_eur": "2000", "margin_pct": "10", "min_count": 3, "window_hours": 48},
    ),
    (
        "minimal-play",
        "Withdrawal after deposits with wagering under 20%",
        "minimal_play",
        "aml",
        30,
        {"lookback_days": 7, "min_deposits_eur": "200", "max_wagering_pct": "20"},
    ),
    (
        "deposit-velocity",
        "More than 5 deposits in 60 minutes",
        "deposit_velocity",
        "aml",
        15,
        {"max_count": 5, "window_minutes": 60},
    ),
    (
        "rapid-cycle",
        "Withdrawal of 80%+ of a deposit within 2 hours of it",
        "rapid_cycle",
        "aml",
        25,
        {"window_minutes": 120, "min_ratio_pct": "80"},
    ),
    (
        "shared-instrument",
        "Payment instrument used by more than one player",
        "shared_instrument",
        "aml",
        40,
        {"max_players": 1},
    ),
    (
        "many-instruments",
        "More than 3 payment instruments in 7 days",
        "many_instruments",
        "aml",
        20,
        {"max_instruments": 3, "window_days": 7},
    ),
    (
        "high-risk-jurisdiction",
        "Player resident in a high-risk jurisdiction (FATF)",
        "high_risk_jurisdiction",
        "aml",
        30,
        {"countries": ["KP", "IR", "MM"]},
    ),
    (
        "dormant-reactivation",
        "€1,000+ moved after 180 days without activity",
        "dormant_reactivation",
        "aml",
        20,
        {"dormant_days": 180, "min_amount_eur": "1000"},
    ),
    (
        "net-deposits-rg",
        "Net deposits over £150 in 30 days (financial vulnerability check)",
        "net_deposits",
        "responsible_gambling",
        5,
        {"threshold": "150", "threshold_currency": "GBP", "window_days": 30},
    ),
    (
        "location-mismatch",
        "IP country differs from country of residence",
        "location_mismatch",
        "location",
        10,
        {},
    ),
    ("sanctions-match", "Name matches the OFAC SDN list", "sanctions_match", "sanctions", 60, {}),
]

_COMPLIANCE_VIEW = [
    "view_alert",
    "view_amlrule",
    "view_auditevent",
    "view_case",
    "view_casenote",
    "view_depositlimit",
    "view_documentrequest",
    "view_instrumentuse",
    "view_kycdocument",
    "view_kyclevelchange",
    "view_kycprofile",
    "view_paymentdecision",
    "view_riskassessment",
    "view_sanctionsentity",
    "view_sanctionsimport",
    "view_sanctionsname",
    "view_selfexclusion",
    "view_suspiciousactivityreport",
    "view_verificationrequest",
    "view_withdrawalblock",
]
_OFFICER = [
    *_COMPLIANCE_VIEW,
    "work_case",
    "close_case",
    "file_sar",
    "resolve_alert",
    "review_verification",
    "change_kyc_level",
]
_LEDGER_VIEW = [
    ("wallets", c) for c in ("view_player", "view_account", "view_journalentry", "view_posting")
]

ROLES = {
    "Compliance officer": [("compliance", c) for c in _OFFICER] + _LEDGER_VIEW,
    # Works the payments queue (payments adds its own permissions to this group); reads
    # compliance status to answer players, but cannot work or close a case.
    "Operator": _LEDGER_VIEW + [
        ("compliance", c)
        for c in ("view_case", "view_alert", "view_paymentdecision", "view_kycprofile",
                  "view_depositlimit", "view_selfexclusion", "view_riskassessment")
    ],
    # Reconciliation adds its permissions to this group.
    "Finance": [*_LEDGER_VIEW, ("wallets", "view_balancedelta"), ("wallets", "view_currency"), ("compliance", "view_paymentdecision")],
    "Supervisor": [("compliance", c) for c in [*_OFFICER, "change_amlrule"]] + _LEDGER_VIEW + [("wallets", "change_player")],
}  # fmt: skip

SCHEDULES = [
    (
        "Compliance: sweep the ledger for AML monitoring",
        "compliance.tasks.sweep_ledger",
        "interval",
    ),
    (
        "Compliance: re-run AML rules for active players",
        "compliance.tasks.monitor_active_players",
        ("0", "2"),
    ),
    (
        "Compliance: downgrade KYC levels of expired documents",
        "compliance.tasks.expire_kyc_documents",
        ("30", "3"),
    ),
]


def seed_rules(apps, schema_editor):
    AmlRule = apps.get_model("compliance", "AmlRule")
    for code, name, kind, category, score, parameters in RULES:
        AmlRule.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "kind": kind,
                "category": category,
                "score": score,
                "parameters": parameters,
            },
        )


def create_roles(apps, schema_editor):
    # Permissions are normally created after migrate; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        for app_label, codename in perms:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, when in SCHEDULES:
        if when == "interval":
            every, _ = IntervalSchedule.objects.get_or_create(
                every=settings.COMPLIANCE_MONITORING_INTERVAL_SECONDS, period="seconds"
            )
            PeriodicTask.objects.get_or_create(
                name=name, defaults={"task": task, "interval": every}
            )
        else:
            minute, hour = when
            crontab, _ = CrontabSchedule.objects.get_or_create(
                minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*"
            )
            PeriodicTask.objects.get_or_create(
                name=name, defaults={"task": task, "crontab": crontab}
            )


def unseed(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        task__startswith="compliance.tasks."
    ).delete()
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES)).delete()
    apps.get_model("compliance", "AmlRule").objects.filter(code__in=[r[0] for r in RULES]).delete()


def forwards(apps, schema_editor):
    seed_rules(apps, schema_editor)
    create_roles(apps, schema_editor)
    schedule(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0001_initial"),
        ("wallets", "0003_schedule_balance_rollup"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, unseed)]
