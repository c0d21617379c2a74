"""Sanctions screening against the OFAC SDN list: reading OFAC's files and matching names.

This module reads and matches; it writes nothing. Storing a list, screening a player and
raising the alert are services (`compliance.services.screening`), which sit above it.

Reading: OFAC's CSV files (sdn.csv, alt.csv, add.csv; no header, `-0-` for empty) give every
name and alias, with dates of birth and countries parsed out of the remarks and addresses.
The snapshot in the repository's `data/ofac/` is the default list (`OFAC_DATA_DIR`);
`manage.py import_sanctions --dir` loads a newer one.

Matching: names are normalized (accents folded, case, punctuation and honorifics dropped);
rapidfuzz's token-sort ratio (order-blind: "HASAN, Ali" is "Ali Hasan") picks candidates
from the whole list in C, then `name_similarity` scores each name part against its best
counterpart, so one shared first name is not a match. Date of birth and country are
qualifiers: a matching birth year raises the score, a birth year more than a year apart
lowers it, a shared country raises it slightly.
At or above `settings.COMPLIANCE_SCREENING_THRESHOLD` (0.70 by default) is a hit. Only
individuals are screened: players are natural persons, and companies, vessels and aircraft
would only add false positives.
"""

import csv
import hashlib
import re
import threading
import time
import unicodedata
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from django.conf import settings
from rapidfuzz import fuzz, process

from .errors import SanctionsListUnavailable
from .models import SanctionsEntity, SanctionsImport, SanctionsName

SOURCE = "ofac_sdn"
EMPTY = "-0-"

HONORIFICS = {
    "mr", "mrs", "ms", "miss", "dr", "prof", "sir", "lady", "lord", "dame", "sheikh",
    "shaykh", "sheik", "haji", "hajji", "hadji", "mullah", "maulana", "imam", "ayatollah",
    "general", "gen", "colonel", "col", "major", "maj", "captain", "capt", "brigadier",
    "admiral", "lt", "sgt", "engineer", "eng", "judge", "president", "minister",
}  # fmt: skip

# Country names as OFAC writes them -> ISO 3166-1 alpha-2 (for the country qualifier).
COUNTRY_CODES = {
    "afghanistan": "AF", "albania": "AL", "algeria": "DZ", "angola": "AO", "argentina": "AR",
    "armenia": "AM", "australia": "AU", "austria": "AT", "azerbaijan": "AZ", "bahrain": "BH",
    "bangladesh": "BD", "belarus": "BY", "belgium": "BE", "belize": "BZ", "bolivia": "BO",
    "bosnia and herzegovina": "BA", "brazil": "BR", "bulgaria": "BG", "burma": "MM",
    "burundi": "BI", "cambodia": "KH", "canada": "CA", "central african republic": "CF",
    "chad": "TD", "chile": "CL", "china": "CN", "colombia": "CO", "costa rica": "CR",
    "croatia": "HR", "cuba": "CU", "cyprus": "CY", "czech republic": "CZ",
    "congo, democratic republic of the": "CD", "democratic republic of the congo": "CD",
    "denmark": "DK", "dominican republic": "DO", "ecuador": "EC", "egypt": "EG",
    "el salvador": "SV", "eritrea": "ER", "ethiopia": "ET", "finland": "FI", "france": "FR",
    "gaza": "PS", "georgia": "GE", "germany": "DE", "ghana": "GH", "greece": "GR",
    "guatemala": "GT", "guinea": "GN", "haiti": "HT", "honduras": "HN", "hong kong": "HK",
    "hungary": "HU", "india": "IN", "indonesia": "ID", "iran": "IR", "iraq": "IQ",
    "ireland": "IE", "israel": "IL", "italy": "IT", "jamaica": "JM", "japan": "JP",
    "jordan": "JO", "kazakhstan": "KZ", "kenya": "KE", "korea, north": "KP",
    "north korea": "KP", "korea, south": "KR", "south korea": "KR", "kosovo": "XK",
    "kuwait": "KW", "kyrgyzstan": "KG", "laos": "LA", "latvia": "LV", "lebanon": "LB",
    "liberia": "LR", "libya": "LY", "liechtenstein": "LI", "lithuania": "LT",
    "luxembourg": "LU", "macedonia": "MK", "malaysia": "MY", "mali": "ML", "malta": "MT",
    "mauritania": "MR", "mexico": "MX", "moldova": "MD", "montenegro": "ME", "morocco": "MA",
    "mozambique": "MZ", "namibia": "NA", "netherlands": "NL", "new zealand": "NZ",
    "nicaragua": "NI", "niger": "NE", "nigeria": "NG", "norway": "NO", "oman": "OM",
    "pakistan": "PK", "palestinian": "PS", "panama": "PA", "paraguay": "PY", "peru": "PE",
    "philippines": "PH", "poland": "PL", "portugal": "PT", "qatar": "QA", "romania": "RO",
    "russia": "RU", "rwanda": "RW", "saudi arabia": "SA", "senegal": "SN", "serbia": "RS",
    "sierra leone": "SL", "singapore": "SG", "slovakia": "SK", "slovenia": "SI",
    "somalia": "SO", "south africa": "ZA", "south sudan": "SS", "spain": "ES",
    "sri lanka": "LK", "sudan": "SD", "sweden": "SE", "switzerland": "CH", "syria": "SY",
    "taiwan": "TW", "tajikistan": "TJ", "tanzania": "TZ", "thailand": "TH", "tunisia": "TN",
    "turkey": "TR", "turkmenistan": "TM", "uganda": "UG", "ukraine": "UA",
    "united arab emirates": "AE", "united kingdom": "GB", "united states": "US",
    "uruguay": "UY", "uzbekistan": "UZ", "venezuela": "VE", "vietnam": "VN",
    "west bank": "PS", "yemen": "YE", "zambia": "ZM", "zimbabwe": "ZW",
}  # fmt: skip

MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
)}  # fmt: skip
_DOB = re.compile(r"\bDOB ([^;]+)")
_FULL_DATE = re.compile(r"\b(\d{1,2}) ([A-Za-z]{3})[a-z]* (\d{4})\b")
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
_NATIONALITY = re.compile(r"\b(?:nationality|citizen) ([A-Za-z ,]+?)(?:;|\.|$| alt\.)")
_NON_WORD = re.compile(r"[^\w]+")


def normalize_name(name: str) -> str:
    """Fold accents and case, drop punctuation and honorifics; keep word order (the scorer
    sorts tokens itself)."""
    folded = unicodedata.normalize("NFKD", name)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).casefold()
    tokens = [t for t in _NON_WORD.sub(" ", folded.replace("'", "")).split() if t]
    return " ".join(t for t in tokens if t not in HONORIFICS)


def parse_dates_of_birth(remarks: str) -> list[str]:
    found = []
    for phrase in _DOB.findall(remarks or ""):
        full = _FULL_DATE.findall(phrase)
        for day, month, year in full:
            if month.lower() in MONTHS:
                found.append(f"{int(year):04d}-{MONTHS[month.lower()]:02d}-{int(day):02d}")
        if not full:
            found.extend(_YEAR.findall(phrase))
    return list(dict.fromkeys(found))


def _country_code(name: str) -> str | None:
    return COUNTRY_CODES.get(name.strip().strip(".").lower())


def parse_countries(remarks: str, addresses: list[str]) -> list[str]:
    names = [m.strip() for m in _NATIONALITY.findall(remarks or "")] + addresses
    return sorted({code for code in map(_country_code, names) if code})


def _field(value: str) -> str:
    value = (value or "").strip()
    return "" if value == EMPTY else value


def _read(path: Path) -> list[list[str]]:
    try:
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            return [row for row in csv.reader(handle) if row]
    except OSError as error:
        raise SanctionsListUnavailable(f"Cannot read {path}: {error}", path=str(path)) from None


def data_dir() -> Path:
    return Path(settings.OFAC_DATA_DIR)


FILES = ("sdn.csv", "alt.csv", "add.csv")


def list_digest(directory: Path) -> str:
    """SHA-256 over the three files: the same digest is the same list."""
    digest = hashlib.sha256()
    for path in (directory / name for name in FILES):
        if not path.exists():
            raise SanctionsListUnavailable(f"{path} is missing.", path=str(path))
        digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass
class SdnList:
    """One list read from OFAC's files: the entries (unsaved) and every name of each, as
    (ent_num, name, kind) with the primary names first."""

    entities: list[SanctionsEntity]
    names: list[tuple[str, str, str]]


def read_sdn(directory: Path) -> SdnList:
    sdn, alt, add = (_read(directory / name) for name in FILES)
    addresses: dict[str, list[str]] = {}
    for row in add:
        if len(row) >= 5 and _field(row[4]):
            addresses.setdefault(row[0].strip(), []).append(_field(row[4]))
    entities, names = [], []
    for row in sdn:
        if len(row) < 12:
            continue
        ent_num, remarks = row[0].strip(), _field(row[11])
        entity = SanctionsEntity(
            source=SOURCE,
            source_id=ent_num,
            name=_field(row[1]),
            entity_type=_field(row[2]) or "entity",
            programs=_field(row[3]),
            title=_field(row[4]),
            remarks=remarks,
            dates_of_birth=parse_dates_of_birth(remarks),
            countries=parse_countries(remarks, addresses.get(ent_num, [])),
        )
        entities.append(entity)
        names.append((ent_num, entity.name, SanctionsName.Kind.PRIMARY))
    kinds = {k.value for k in SanctionsName.Kind}
    for row in alt:
        if len(row) >= 4 and _field(row[3]):
            kind = _field(row[2]).lower().strip(".")
            names.append((row[0].strip(), _field(row[3]), kind if kind in kinds else "aka"))
    return SdnList(entities=entities, names=names)


# --- matching ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    entity_id: int
    source_id: str
    listed_name: str
    matched_name: str
    name_score: float
    score: float
    qualifiers: tuple[str, ...]


class _Index:
    """The normalized names of listed individuals, loaded once per import per process."""

    _lock = threading.Lock()
    _loaded_for: int | None = None
    names: list[str] = []
    # The same names with their tokens sorted: the token-sort ratio without re-sorting every
    # listed name on every query.
    sorted_names: list[str] = []
    rows: list[tuple[int, str]] = []  # (entity_id, original name) parallel to `names`
    entities: dict[int, SanctionsEntity] = {}

    _checked_at = float("-inf")

    @classmethod
    def invalidate(cls) -> None:
        """Make the next match ask which import is current (after a new list commits)."""
        cls._checked_at = float("-inf")

    @classmethod
    def current(cls) -> "type[_Index]":
        # Which import is current is asked at most every CHECK_SECONDS: a list update reaches
        # other processes within that, and a re-screen of every player does not pay a query
        # per name.
        if time.monotonic() - cls._checked_at < CHECK_SECONDS:
            return cls
        latest = SanctionsImport.objects.filter(source=SOURCE).values_list("pk", flat=True)
        latest = latest.first()
        cls._checked_at = time.monotonic()
        with cls._lock:
            if latest != cls._loaded_for:
                entities = SanctionsEntity.objects.filter(source=SOURCE, entity_type="individual")
                cls.entities = {e.pk: e for e in entities}
                pairs = list(
                    SanctionsName.objects.filter(entity_id__in=cls.entities).values_list(
                        "normalized", "entity_id", "name"
                    )
                )
                cls.names = [p[0] for p in pairs]
                cls.sorted_names = [" ".join(sorted(n.split())) for n in cls.names]
                cls.rows = [(p[1], p[2]) for p in pairs]
                cls._loaded_for = latest
        return cls


CHECK_SECONDS = 30
# Candidates below this token-sort ratio (0-100) are not worth the finer comparison.
PREFILTER = 55
TOKEN_MATCH = 0.8


def name_similarity(query_tokens: list[str], listed_tokens: list[str]) -> float:
    """0..1: how well the parts of the player's name and of the listed name find each other.

    Each part takes its best counterpart's similarity if that is at least 0.8 (a spelling
    variant: "Sergey" / "Sergei", "Norega" / "Noriega"), else 0 (a different word). The
    player's side weighs 0.6 and the listed side 0.4, so a missing middle name still matches
    ("Manuel Noriega" vs "Manuel Antonio Noriega": 0.87) while one shared first name does not
    ("John Smith" vs "John Numbi": 0.5; a plain token-sort ratio gives it 0.70).
    """

    def covered(side, other):
        total = 0.0
        for token in side:
            best = max(fuzz.ratio(token, o) for o in other) / 100
            total += best if best >= TOKEN_MATCH else 0.0
        return total / len(side)

    return 0.6 * covered(query_tokens, listed_tokens) + 0.4 * covered(listed_tokens, query_tokens)


def _birth_years(values: list[str]) -> set[int]:
    return {int(v[:4]) for v in values}


def match_name(
    full_name: str,
    *,
    date_of_birth: date | None = None,
    country: str = "",
    threshold: float | None = None,
) -> list[Match]:
    """Listed individuals whose name (or alias) matches, best first, at or above threshold."""
    threshold = settings.COMPLIANCE_SCREENING_THRESHOLD if threshold is None else threshold
    query = normalize_name(full_name)
    if not query:
        return []
    index = _Index.current()
    # Stage one, in C over the whole list: the token-sort ratio finds the candidates.
    query_tokens = query.split()
    candidates = process.extract(
        " ".join(sorted(query_tokens)),
        index.sorted_names,
        scorer=fuzz.ratio,
        score_cutoff=PREFILTER,
        limit=50,
    )
    best: dict[int, Match] = {}
    for _, _, position in candidates:
        listed = index.names[position]
        entity_id, original = index.rows[position]
        entity = index.entities[entity_id]
        # Stage two: every name part must find its counterpart (see `name_similarity`).
        name_score = name_similarity(query_tokens, listed.split())
        score, qualifiers = name_score, []
        if date_of_birth and entity.dates_of_birth:
            if date_of_birth.isoformat() in entity.dates_of_birth:
                score, qualifiers = score + 0.10, [*qualifiers, "dob_exact"]
            elif date_of_birth.year in _birth_years(entity.dates_of_birth):
                score, qualifiers = score + 0.05, [*qualifiers, "dob_year"]
            elif min(abs(date_of_birth.year - y) for y in _birth_years(entity.dates_of_birth)) > 1:
                score, qualifiers = score - 0.15, [*qualifiers, "dob_mismatch"]
        if country and country.upper() in entity.countries:
            score, qualifiers = score + 0.03, [*qualifiers, "country"]
        score = round(min(score, 1.0), 4)
        if score < threshold:
            continue
        match = Match(
            entity_id=entity_id,
            source_id=entity.source_id,
            listed_name=entity.name,
            matched_name=original,
            name_score=round(name_score, 4),
            score=score,
            qualifiers=tuple(qualifiers),
        )
        if entity_id not in best or best[entity_id].score < score:
            best[entity_id] = match
    return sorted(best.values(), key=lambda m: -m.score)


def invalidate_index() -> None:
    """Reload the list in this process on its next match (after a new list commits)."""
    _Index.invalidate()
