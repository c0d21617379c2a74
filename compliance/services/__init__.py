"""Every compliance write, and the decisions payments and the game wallet ask for, by subject:

- `decisions`: `assess_deposit`, `assess_withdrawal` (-> `Decision`), `check_bet` — the
  contract with payments and the game wallet;
- `kyc`: verification requests, the officer's review, levels, expiring documents;
- `gambling`: the player's deposit limits and self-exclusions;
- `cases`: alerts, the case each joins, and what an officer does with a case;
- `screening`: storing an OFAC list, screening players against it;
- `risk`: the player's risk score and band;
- `audit`: the audit trail and the role, reason and transition checks of staff actions;
- `instruments`: compliance's stored instrument fingerprints kept on the current key version.

Callers use this package as one module (`from compliance import services`,
`services.assess_deposit(...)`); the subject modules import each other directly, never this
package's names, and form no cycle. Reads shared with other parts of
compliance live in `compliance.selectors`; the reads callers knew as `services.<name>` are
re-exported below so they keep working.

Nothing here imports `compliance.monitoring` or `compliance.tasks` (they sit above); a service
that needs a task started sends a signal (`compliance.signals`) that `receivers.py` turns into
the task. The import-linter contracts in pyproject.toml keep it so.
"""

from ..selectors import (
    active_self_exclusion,
    deposited,
    deposited_eur,
    kyc_level,
    risk_level,
    withdrawals_blocked_by,
)
from .audit import audit
from .cases import (
    add_case_note,
    assign_case,
    block_withdrawals,
    close_case,
    escalate_case,
    freeze_player_for_case,
    lift_withdrawal_block,
    raise_alert,
    raise_event_alert,
    record_sar,
    request_documents,
    resolve_alert,
    start_investigation,
)
from .decisions import (
    Decision,
    age_on,
    assess_deposit,
    assess_withdrawal,
    check_bet,
    ip_country,
    is_blocked_country,
    minimum_age,
)
from .gambling import MAX_EXCLUSION_DAYS, self_exclude, set_deposit_limit
from .instruments import rekey_instrument_fingerprints, stale_instrument_fingerprints
from .kyc import (
    LEVEL_DOCUMENTS,
    expire_kyc_documents,
    resubmit_verification,
    review_verification,
    set_kyc_level,
    submit_verification,
    valid_document_types,
)
from .risk import recompute_risk
from .screening import import_sdn, rescreen_all_players, screen_player

__all__ = [
    "LEVEL_DOCUMENTS",
    "MAX_EXCLUSION_DAYS",
    "Decision",
    "active_self_exclusion",
    "add_case_note",
    "age_on",
    "assess_deposit",
    "assess_withdrawal",
    "assign_case",
    "audit",
    "block_withdrawals",
    "check_bet",
    "close_case",
    "deposited",
    "deposited_eur",
    "escalate_case",
    "expire_kyc_documents",
    "freeze_player_for_case",
    "import_sdn",
    "ip_country",
    "is_blocked_country",
    "kyc_level",
    "lift_withdrawal_block",
    "minimum_age",
    "raise_alert",
    "raise_event_alert",
    "recompute_risk",
    "record_sar",
    "rekey_instrument_fingerprints",
    "request_documents",
    "rescreen_all_players",
    "resolve_alert",
    "resubmit_verification",
    "review_verification",
    "risk_level",
    "screen_player",
    "self_exclude",
    "set_deposit_limit",
    "set_kyc_level",
    "stale_instrument_fingerprints",
    "start_investigation",
    "submit_verification",
    "valid_document_types",
    "withdrawals_blocked_by",
]
