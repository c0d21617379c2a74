"""Validation of payout destinations: IBAN (ISO 13616 structure, mod-97 check digits and the
national BBAN checksum where the country has one, through `schwifty`, with the bank's BIC
where schwifty's bank registry knows it), crypto addresses per network (Bitcoin Base58Check
and Bech32/Bech32m, Ethereum hex with the EIP-55 mixed-case checksum through `eth-hash`'s
Keccak-256, Tron Base58Check), card tokens (never card numbers) and e-wallet account ids.

Each check is the published algorithm, not a pattern match, so a typo in one character is
caught.
"""

import hashlib
import re

from eth_hash.auto import keccak
from schwifty import IBAN
from schwifty.exceptions import (
    InvalidBBANChecksum,
    InvalidChecksumDigits,
    InvalidCountryCode,
    InvalidLength,
    SchwiftyException,
)

from wallets import fingerprints

from .errors import InvalidInstrument

NETWORKS = {"bitcoin": {"BTC"}, "ethereum": {"ETH", "USDT"}, "tron": {"USDT"}}

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _iban(value: str) -> IBAN:
    """Parse and validate, or raise InvalidInstrument with what is wrong."""
    if not isinstance(value, str):
        raise InvalidInstrument("An IBAN is a string.")
    compact = re.sub(r"\s+", "", value).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{1,30}", compact):
        raise InvalidInstrument("An IBAN starts with a country code and two check digits.")
    try:
        # validate_bban: the national checksum inside the BBAN too (BE, ES, FR, IT, …), which
        # catches typos the mod-97 check digits alone would let through.
        iban = IBAN(compact, validate_bban=True)
    except InvalidCountryCode:
        raise InvalidInstrument(
            f"{compact[:2]} is not a country with IBANs.", country=compact[:2]
        ) from None
    except InvalidLength:
        raise InvalidInstrument(
            f"That is not the length of a {compact[:2]} IBAN.", length=len(compact)
        ) from None
    except (InvalidChecksumDigits, InvalidBBANChecksum):
        raise InvalidInstrument("The IBAN check digits do not match: check for a typo.") from None
    except SchwiftyException as exc:
        raise InvalidInstrument(f"Not a valid IBAN: {exc}.") from None
    if not iban.in_sepa_zone:
        # Bank payouts and refunds are SEPA credit transfers: an IBAN outside the SEPA scheme
        # cannot receive one.
        raise InvalidInstrument(
            f"IBANs from {iban.country_code} are not accepted (outside SEPA).",
            country=iban.country_code,
        )
    return iban


def normalise_iban(value: str) -> str:
    """The IBAN in its compact electronic form (no spaces, upper case), validated."""
    return _iban(value).compact


def bic_for_iban(value: str) -> str:
    """The BIC of the IBAN's bank where schwifty's registry knows the bank code, else "".
    Raises InvalidInstrument for an invalid IBAN, like `normalise_iban`."""
    bic = _iban(value).bic
    return str(bic) if bic else ""


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


def _eip55(hex_address: str) -> str:
    """EIP-55: a hex letter is upper case where the Keccak-256 of the lower-case hex address
    has a nibble of 8 or more at the same position."""
    lower = hex_address.lower()
    digest = keccak(lower.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(digest[i], 16) >= 8 else c for i, c in enumerate(lower)
    )


def _valid_ethereum(address: str) -> bool:
    body = address[2:]
    if not address.startswith("0x") or not re.fullmatch(r"[0-9a-fA-F]{40}", body):
        return False
    if body == body.lower() or body == body.upper():
        # Single-case hex carries no checksum (EIP-55): accepted as it is.
        return True
    # Mixed case is a checksum claim: one letter in the wrong case is a typo.
    return _eip55(body) == address


def validate_crypto_address(address: str, network: str) -> str:
    """The address if valid on `network`, in its canonical form: Bech32 in lower case, an
    Ethereum address in its EIP-55 checksummed form (so one address saved in two cases is one
    instrument); raises InvalidInstrument otherwise."""
    address = address.strip()
    if network == "bitcoin":
        if address.lower().startswith("bc1"):
            valid = _valid_segwit(address)
        else:
            payload = _b58decode_check(address)
            # 0x00 pay-to-pubkey-hash, 0x05 pay-to-script-hash, both 20-byte hashes.
            valid = payload is not None and len(payload) == 21 and payload[0] in (0x00, 0x05)
    elif network == "ethereum":
        valid = _valid_ethereum(address)
        if valid:
            address = _eip55(address[2:])
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
    """A stable, keyed fingerprint naming one payment instrument (IBAN, wallet account, crypto
    address, card fingerprint or token) without carrying it: the ledger and compliance group
    players by this, never by the raw identifier. "v<N>:<hex>", an HMAC-SHA256 under the
    current INSTRUMENT_FINGERPRINT_KEYS (wallets/fingerprints.py: versions, rotation), so an
    IBAN cannot be confirmed by hashing guesses. The kind is part of the input, so an IBAN paid
    from and an IBAN paid to give the same fingerprint, and identifiers of different kinds
    never collide."""
    return fingerprints.fingerprint(kind, _normalise_identifier(kind, identifier))
