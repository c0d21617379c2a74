"""Validation of payout destinations: IBAN (ISO 13616 length per country and mod-97
checksum), crypto addresses per network (Bitcoin Base58Check and Bech32/Bech32m, Ethereum
hex, Tron Base58Check), card tokens (never card numbers) and e-wallet account ids.

Hand-written because no maintained validator was installable here; each check is the
published algorithm, not a pattern match, so a typo in one character is caught.
"""

import hashlib
import re

from .errors import InvalidInstrument

# ISO 13616 registry: IBAN length per country (SEPA and the main casino markets).
IBAN_LENGTHS = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GI": 23, "GR": 27, "HR": 21, "HU": 28,
    "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31,
    "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "VA": 22,
}  # fmt: skip

NETWORKS = {"bitcoin": {"BTC"}, "ethereum": {"ETH", "USDT"}, "tron": {"USDT"}}

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def normalise_iban(value: str) -> str:
    iban = re.sub(r"\s+", "", value).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]+", iban):
        raise InvalidInstrument("An IBAN starts with a country code and two check digits.")
    expected = IBAN_LENGTHS.get(iban[:2])
    if expected is None:
        raise InvalidInstrument(f"IBANs from {iban[:2]} are not accepted.", country=iban[:2])
    if len(iban) != expected:
        raise InvalidInstrument(f"A {iban[:2]} IBAN has {expected} characters.", length=len(iban))
    digits = "".join(str(int(c, 36)) for c in iban[4:] + iban[:4])
    if int(digits) % 97 != 1:
        raise InvalidInstrument("The IBAN check digits do not match: check for a typo.")
    return iban


def _b58decode_check(value: str) -> bytes | None:
    number = 0
    for char in value:
        index = _B58.find(char)
        if index < 0:
            return None
        number = number * 58 + index
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    raw = b"\x00" * (len(value) - len(value.lstrip("1"))) + raw
    payload, checksum = raw[:-4], raw[-4:]
    if len(raw) < 5 or hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != checksum:
        return None
    return payload


def _bech32_polymod(values) -> int:
    generator = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            checksum ^= generator[i] if (top >> i) & 1 else 0
    return checksum


def _valid_segwit(address: str) -> bool:
    if address.lower() != address and address.upper() != address:
        return False
    address = address.lower()
    hrp, sep, data_part = address.rpartition("1")
    if hrp != "bc" or not sep or len(data_part) < 6 or len(address) > 90:
        return False
    if any(c not in _BECH32 for c in data_part):
        return False
    data = [_BECH32.find(c) for c in data_part]
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    constant = _bech32_polymod(expanded + data)
    version = data[0]
    # BIP 173 (bech32) for witness v0, BIP 350 (bech32m) for v1+ (taproot).
    if version == 0:
        if constant != 1:
            return False
    elif constant != 0x2BC830A3:
        return False
    program_len = (len(data) - 7) * 5 // 8
    if version == 0:
        return program_len in (20, 32)
    return 2 <= program_len <= 40


def validate_crypto_address(address: str, network: str) -> str:
    address = address.strip()
    if network == "bitcoin":
        if address.lower().startswith("bc1"):
            valid = _valid_segwit(address)
        else:
            payload = _b58decode_check(address)
            # 0x00 pay-to-pubkey-hash, 0x05 pay-to-script-hash, both 20-byte hashes.
            valid = payload is not None and len(payload) == 21 and payload[0] in (0x00, 0x05)
    elif network == "ethereum":
        # Mixed-case addresses carry an EIP-55 checksum that needs Keccak-256, which the
        # standard library lacks; all-lower/all-upper hex is accepted, mixed case refused.
        body = address[2:]
        valid = (
            address.startswith("0x")
            and bool(re.fullmatch(r"[0-9a-fA-F]{40}", body))
            and (body == body.lower() or body == body.upper())
        )
    elif network == "tron":
        payload = _b58decode_check(address)
        valid = payload is not None and len(payload) == 21 and payload[0] == 0x41
    else:
        raise InvalidInstrument(f"Unknown network {network!r}.", networks=sorted(NETWORKS))
    if not valid:
        raise InvalidInstrument(f"Not a valid {network} address.", network=network)
    return (
        address.lower() if network == "bitcoin" and address.lower().startswith("bc1") else address
    )


def validate_card_token(token: str) -> str:
    token = token.strip()
    digits = re.sub(r"[\s-]", "", token)
    if digits.isdigit() and 12 <= len(digits) <= 19:
        # A PAN must never reach us: payouts use the provider's token for the card.
        raise InvalidInstrument("Send the provider's card token, never a card number.")
    if not re.fullmatch(r"[A-Za-z0-9_\-]{8,128}", token):
        raise InvalidInstrument("A card token is 8–128 letters, digits, '_' or '-'.")
    return token


def validate_ewallet_account(account: str) -> str:
    account = account.strip()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}|[A-Za-z0-9_\-]{4,64}", account):
        raise InvalidInstrument("An e-wallet account is its email address or account id.")
    return account.lower() if "@" in account else account


def _normalise_identifier(kind: str, identifier: str) -> str:
    identifier = identifier.strip()
    if kind == "iban":
        return re.sub(r"\s+", "", identifier).upper()
    if kind == "ewallet":
        return identifier.lower() if "@" in identifier else identifier
    if kind == "crypto" and (
        identifier.lower().startswith("bc1") or identifier.lower().startswith("0x")
    ):
        # Bech32 and Ethereum hex name the same address in either case; Base58 does not.
        return identifier.lower()
    return identifier


def instrument_fingerprint(kind: str, identifier: str) -> str:
    """A stable SHA-256 hex naming one payment instrument (IBAN, wallet account, crypto
    address, card fingerprint or token) without carrying it: the ledger and compliance group
    players by this, never by the raw identifier. The kind is part of the hash, so an IBAN
    paid from and an IBAN paid to give the same fingerprint, and identifiers of different
    kinds never collide."""
    return hashlib.sha256(f"{kind}:{_normalise_identifier(kind, identifier)}".encode()).hexdigest()
