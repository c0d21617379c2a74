"""The AML checks, one pure function per `AmlRule.Kind`, over one player's recent activity.

A check gets the rule's parameters (defaults filled in, validated by `clean_parameters`), the
player's `Activity` and `now`, and returns its hits. It reads nothing from the database, so
the same code serves the per-entry task, the periodic batch and the tests. Amounts are
compared in EUR at the reference rates (`settings.COMPLIANCE_EUR_RATES`).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError

from wallets.errors import UnknownCurrency

DEPOSIT = "deposit"
WITHDRAWAL = "withdrawal_hold"  # the player asked to withdraw: the moment that matters for AML
WITHDRAWAL_PAID = "withdrawal_settle"
WITHDRAWAL_RELEASE = "withdrawal_release"
BET = "bet"
BET_REVERSAL = "bet_reversal"
WIN = "win"


def to_eur(amount: Decimal, currency: str) -> Decimal:
    rate = settings.COMPLIANCE_EUR_RATES.get(currency)
    if rate is None:
        # Fail closed: without a rate no threshold can be checked.
        raise UnknownCurrency(
            f"No compliance reference rate for {currency} (COMPLIANCE_EUR_RATES).",
            currency=currency,
        )
    return amount * Decimal(str(rate))


@dataclass(frozen=True)
class Movement:
    entry_id: int
    kind: str
    at: datetime
    currency: str
    amount: Decimal  # positive, in `currency`
    instrument: str = ""
    instrument_type: str = ""

    @property
    def amount_eur(self) -> Decimal:
        return to_eur(self.amount, self.currency)


@dataclass
class Activity:
    player_id: int
    country: str
    player_created_at: datetime
    movements: list[Movement]  # oldest first
    # The newest movement before the loaded window (for dormancy), if any.
    last_movement_before: datetime | None = None
    # fingerprint -> ids of every player seen using it (this one included).
    instrument_players: dict[str, set[int]] = field(default_factory=dict)

    def of_kind(self, *kinds: str) -> list[Movement]:
        return [m for m in self.movements if m.kind in kinds]


@dataclass(frozen=True)
class Hit:
    dedup_key: str
    entry_ids: list[int]
    details: dict
    # Windowed hits are also suppressed while an alert of the rule is younger than `window`.
    window: timedelta | None = None


# --- parameters ----------------------------------------------------------------------------

INT, DEC, COUNTRIES, CURRENCY = "int", "decimal", "countries", "currency"

PARAMETERS: dict[str, dict[str, tuple[str, object]]] = {
    "large_transaction": {"threshold_eur": (DEC, "2000")},
    "cumulative_deposits": {"threshold_eur": (DEC, "5000"), "window_hours": (INT, 168)},
    "structuring": {
        "threshold_eur": (DEC, "2000"),
        "margin_pct": (DEC, "10"),
        "min_count": (INT, 3),
        "window_hours": (INT, 48),
    },
    "minimal_play": {
        "lookback_days": (INT, 7),
        "min_deposits_eur": (DEC, "200"),
        "max_wagering_pct": (DEC, "20"),
    },
    "deposit_velocity": {"max_count": (INT, 5), "window_minutes": (INT, 60)},
    "rapid_cycle": {"window_minutes": (INT, 120), "min_ratio_pct": (DEC, "80")},
    "shared_instrument": {"max_players": (INT, 1)},
    "many_instruments": {"max_instruments": (INT, 3), "window_days": (INT, 7)},
    "high_risk_jurisdiction": {"countries": (COUNTRIES, ["KP", "IR", "MM"])},
    "dormant_reactivation": {"dormant_days": (INT, 180), "min_amount_eur": (DEC, "1000")},
    "net_deposits": {
        "threshold": (DEC, "150"),
        "threshold_currency": (CURRENCY, "GBP"),
        "window_days": (INT, 30),
    },
    "location_mismatch": {},
    "sanctions_match": {},
}


def clean_parameters(kind: str, raw: dict | None) -> dict:
    """The rule's parameters with defaults filled in and types checked; ValidationError names
    the bad one. Unknown keys are refused so a typo in the admin is not silently ignored."""
    spec = PARAMETERS.get(kind)
    if spec is None:
        raise ValidationError(f"Unknown rule kind {kind!r}.")
    raw = raw or {}
    unknown = set(raw) - set(spec)
    if unknown:
        raise ValidationError(f"Unknown parameters for {kind}: {', '.join(sorted(unknown))}.")
    cleaned = {}
    for name, (type_, default) in spec.items():
        value = raw.get(name, default)
        try:
            if type_ == INT:
                if isinstance(value, bool) or int(value) != Decimal(str(value)) or int(value) < 1:
                    raise ValueError
                cleaned[name] = int(value)
            elif type_ == DEC:
                number = Decimal(str(value))
                if not number.is_finite() or number < 0:
                    raise ValueError
                cleaned[name] = number
            elif type_ == CURRENCY:
                if str(value).upper() not in settings.COMPLIANCE_EUR_RATES:
                    raise ValueError
                cleaned[name] = str(value).upper()
            else:
                codes = [str(c).upper() for c in value]
                if any(len(c) != 2 or not c.isalpha() for c in codes):
                    raise ValueError
                cleaned[name] = codes
        except (ValueError, TypeError, InvalidOperation):
            raise ValidationError(f"{kind}: {name}={value!r} is not a valid {type_}.") from None
    return cleaned


# --- checks --------------------------------------------------------------------------------


def _key(movements: list[Movement]) -> str:
    return f"from-entry:{movements[0].entry_id}"


def _ids(movements) -> list[int]:
    return [m.entry_id for m in movements]


def _windows(movements: list[Movement], span: timedelta):
    """For each movement, the movements in the window that ends with it (oldest first)."""
    start = 0
    for end, last in enumerate(movements):
        while movements[start].at < last.at - span:
            start += 1
        yield movements[start : end + 1]


def large_transaction(p, activity: Activity, now) -> list[Hit]:
    return [
        Hit(
            f"entry:{m.entry_id}",
            [m.entry_id],
            {"kind": m.kind, "amount": str(m.amount), "currency": m.currency},
        )
        for m in activity.of_kind(DEPOSIT, WITHDRAWAL)
        if m.amount_eur >= p["threshold_eur"]
    ]


def cumulative_deposits(p, activity: Activity, now) -> list[Hit]:
    span = timedelta(hours=p["window_hours"])
    latest = None
    for window in _windows(activity.of_kind(DEPOSIT), span):
        total = sum((m.amount_eur for m in window), Decimal(0))
        if total >= p["threshold_eur"]:
            latest = (window, total)
    if latest is None:
        return []
    window, total = latest
    return [Hit(_key(window), _ids(window), {"total_eur": str(round(total, 2))}, span)]


def structuring(p, activity: Activity, now) -> list[Hit]:
    threshold = p["threshold_eur"]
    floor = threshold * (1 - p["margin_pct"] / 100)
    just_below = [m for m in activity.of_kind(DEPOSIT) if floor <= m.amount_eur < threshold]
    span = timedelta(hours=p["window_hours"])
    latest = None
    for window in _windows(just_below, span):
        if len(window) >= p["min_count"]:
            latest = window
    if latest is None:
        return []
    return [
        Hit(
            _key(latest),
            _ids(latest),
            {"count": len(latest), "band_eur": [str(round(floor, 2)), str(threshold)]},
            span,
        )
    ]


def minimal_play(p, activity: Activity, now) -> list[Hit]:
    span = timedelta(days=p["lookback_days"])
    hits = []
    # Older withdrawals may lack part of their lookback in the loaded history.
    for withdrawal in [w for w in activity.of_kind(WITHDRAWAL) if w.at >= now - span]:
        before = [m for m in activity.movements if withdrawal.at - span <= m.at <= withdrawal.at]
        deposits = sum((m.amount_eur for m in before if m.kind == DEPOSIT), Decimal(0))
        if deposits < p["min_deposits_eur"]:
            continue
        wagered = sum((m.amount_eur for m in before if m.kind == BET), Decimal(0)) - sum(
            (m.amount_eur for m in before if m.kind == BET_REVERSAL), Decimal(0)
        )
        wagering_pct = wagered * 100 / deposits
        if wagering_pct < p["max_wagering_pct"]:
            hits.append(
                Hit(
                    f"entry:{withdrawal.entry_id}",
                    [m.entry_id for m in before if m.kind in (DEPOSIT, WITHDRAWAL)],
                    {
                        "deposited_eur": str(round(deposits, 2)),
                        "wagered_eur": str(round(wagered, 2)),
                        "wagering_pct": str(round(wagering_pct, 1)),
                    },
                )
            )
    return hits


def deposit_velocity(p, activity: Activity, now) -> list[Hit]:
    span = timedelta(minutes=p["window_minutes"])
    latest = None
    for window in _windows(activity.of_kind(DEPOSIT), span):
        if len(window) > p["max_count"]:
            latest = window
    if latest is None:
        return []
    return [Hit(_key(latest), _ids(latest), {"count": len(latest)}, span)]


def rapid_cycle(p, activity: Activity, now) -> list[Hit]:
    span = timedelta(minutes=p["window_minutes"])
    deposits = activity.of_kind(DEPOSIT)
    hits = []
    for withdrawal in activity.of_kind(WITHDRAWAL):
        recent = [d for d in deposits if withdrawal.at - span <= d.at <= withdrawal.at]
        for deposit in reversed(recent):
            if withdrawal.amount_eur * 100 >= deposit.amount_eur * p["min_ratio_pct"]:
                minutes = (withdrawal.at - deposit.at).total_seconds() / 60
                hits.append(
                    Hit(
                        f"entry:{withdrawal.entry_id}",
                        [deposit.entry_id, withdrawal.entry_id],
                        {"minutes_between": round(minutes, 1)},
                    )
                )
                break
    return hits


def shared_instrument(p, activity: Activity, now) -> list[Hit]:
    hits = []
    for fingerprint in sorted({m.instrument for m in activity.movements if m.instrument}):
        players = activity.instrument_players.get(fingerprint, set()) | {activity.player_id}
        if len(players) > p["max_players"]:
            used = [m for m in activity.movements if m.instrument == fingerprint]
            hits.append(
                Hit(
                    f"instrument:{fingerprint}",
                    _ids(used),
                    {
                        "instrument": fingerprint,
                        "instrument_type": used[-1].instrument_type,
                        "other_players": sorted(players - {activity.player_id}),
                    },
                )
            )
    return hits


def many_instruments(p, activity: Activity, now) -> list[Hit]:
    span = timedelta(days=p["window_days"])
    with_instrument = [m for m in activity.movements if m.instrument]
    latest = None
    for window in _windows(with_instrument, span):
        if len({m.instrument for m in window}) > p["max_instruments"]:
            latest = window
    if latest is None:
        return []
    instruments = sorted({m.instrument for m in latest})
    return [Hit(_key(latest), _ids(latest), {"instruments": instruments}, span)]


def high_risk_jurisdiction(p, activity: Activity, now) -> list[Hit]:
    country = activity.country.upper()
    money = activity.of_kind(DEPOSIT, WITHDRAWAL)
    if country not in p["countries"] or not money:
        return []
    return [Hit(f"country:{country}", _ids(money[-1:]), {"country": country})]


def dormant_reactivation(p, activity: Activity, now) -> list[Hit]:
    gap = timedelta(days=p["dormant_days"])
    previous = activity.last_movement_before or activity.player_created_at
    hits = []
    for movement in activity.movements:
        if (
            movement.kind in (DEPOSIT, WITHDRAWAL)
            and movement.at - previous >= gap
            and movement.amount_eur >= p["min_amount_eur"]
        ):
            hits.append(
                Hit(
                    f"entry:{movement.entry_id}",
                    [movement.entry_id],
                    {"dormant_days": (movement.at - previous).days},
                )
            )
        previous = movement.at
    return hits


def net_deposits(p, activity: Activity, now) -> list[Hit]:
    """Deposits less paid-out withdrawals over the window: the UKGC financial-vulnerability
    trigger: £150 in 30 days by default)."""
    span = timedelta(days=p["window_days"])
    relevant = [m for m in activity.of_kind(DEPOSIT, WITHDRAWAL_PAID) if m.at >= now - span]
    deposits = [m for m in relevant if m.kind == DEPOSIT]
    if not deposits:
        return []
    net = sum((m.amount_eur for m in deposits), Decimal(0)) - sum(
        (m.amount_eur for m in relevant if m.kind == WITHDRAWAL_PAID), Decimal(0)
    )
    threshold = to_eur(p["threshold"], p["threshold_currency"])
    if net <= threshold:
        return []
    details = {"net_deposits_eur": str(round(net, 2)), "threshold_eur": str(round(threshold, 2))}
    return [Hit(_key(deposits), _ids(relevant), details, span)]


CHECKS: dict[str, Callable[[dict, Activity, datetime], list[Hit]]] = {
    "large_transaction": large_transaction,
    "cumulative_deposits": cumulative_deposits,
    "structuring": structuring,
    "minimal_play": minimal_play,
    "deposit_velocity": deposit_velocity,
    "rapid_cycle": rapid_cycle,
    "shared_instrument": shared_instrument,
    "many_instruments": many_instruments,
    "high_risk_jurisdiction": high_risk_jurisdiction,
    "dormant_reactivation": dormant_reactivation,
    "net_deposits": net_deposits,
}


def lookback(rules) -> timedelta:
    """How much history the enabled rules need (dormancy reads one extra row instead)."""
    spans = [timedelta(days=1)]
    for _kind, p in rules:
        if "window_hours" in p:
            spans.append(timedelta(hours=p["window_hours"]))
        if "window_minutes" in p:
            spans.append(timedelta(minutes=p["window_minutes"]))
        if "window_days" in p:
            spans.append(timedelta(days=p["window_days"]))
        if "lookback_days" in p:
            spans.append(timedelta(days=p["lookback_days"]) * 2)
    return max(spans)
