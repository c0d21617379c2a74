import pytest

from payments import instruments
from payments.errors import InvalidInstrument
from payments.models import PayoutInstrument


@pytest.mark.parametrize(
    "raw,normalised",
    [
        ("DE89 3704 0044 0532 0130 00", "DE89370400440532013000"),
        ("gb82 west 1234 5698 7654 32", "GB82WEST12345698765432"),
        ("MT84MALT011000012345MTLCAST001S", "MT84MALT011000012345MTLCAST001S"),
        ("FR14 2004 1010 0505 0001 3M02 606", "FR1420041010050500013M02606"),
        ("BE68 5390 0754 7034", "BE68539007547034"),
    ],
)
def test_valid_ibans_are_normalised(raw, normalised):
    assert instruments.normalise_iban(raw) == normalised


@pytest.mark.parametrize(
    "bad",
    [
        "DE89 3704 0044 0532 0130 01",  # one digit off: checksum fails
        "DE89 3704 0044 0532 0130",  # too short for DE
        "XX89 3704 0044 0532 0130 00",  # unknown country
        "not an iban",
        "",
        # Mod-97 check digits right, Belgian national check digits (last two) wrong: only the
        # BBAN checksum catches this typo.
        "BE41 5390 0754 7035",
        # A valid Saudi IBAN: not reachable by a SEPA credit transfer.
        "SA03 8000 0000 6080 1016 7519",
    ],
)
def test_invalid_ibans_are_refused(bad):
    with pytest.raises(InvalidInstrument):
        instruments.normalise_iban(bad)


@pytest.mark.parametrize(
    "iban,bic",
    [
        ("DE89 3704 0044 0532 0130 00", "COBADEFFXXX"),
        ("NL91ABNA0417164300", "ABNANL2A"),
        ("FR1420041010050500013M02606", "PSSTFRPP"),
        # schwifty's registry has no entry for this bank code: no BIC rather than a guess.
        ("GB82WEST12345698765432", ""),
    ],
)
def test_the_bic_comes_from_the_bank_registry_where_it_is_known(iban, bic):
    assert instruments.bic_for_iban(iban) == bic


def test_bic_lookup_refuses_an_invalid_iban():
    with pytest.raises(InvalidInstrument):
        instruments.bic_for_iban("DE89 3704 0044 0532 0130 01")


@pytest.mark.parametrize(
    "address,network",
    [
        ("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "bitcoin"),  # P2PKH
        ("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", "bitcoin"),  # P2SH
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "bitcoin"),  # BIP 173 vector
        ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", "bitcoin"),  # taproot
        ("0x52908400098527886e0f7030069857d2e4169ee7", "ethereum"),
        ("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", "tron"),
    ],
)
def test_valid_crypto_addresses(address, network):
    assert instruments.validate_crypto_address(address, network)


# The test cases of EIP-55 itself (ethereum/ERCs, ERCS/erc-55.md): each is the checksummed
# form of its address, whether that form happens to be all caps, all lower or mixed.
EIP55_VECTORS = [
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize("checksummed", EIP55_VECTORS)
def test_eip55_addresses_are_accepted_and_any_case_comes_back_checksummed(checksummed):
    assert instruments.validate_crypto_address(checksummed, "ethereum") == checksummed
    assert instruments.validate_crypto_address(checksummed.lower(), "ethereum") == checksummed
    upper = "0x" + checksummed[2:].upper()
    assert instruments.validate_crypto_address(upper, "ethereum") == checksummed


@pytest.mark.parametrize("checksummed", [v for v in EIP55_VECTORS if v[2:] != v[2:].lower()])
def test_a_mixed_case_address_with_one_letter_in_the_wrong_case_is_refused(checksummed):
    body = checksummed[2:]
    # Flip the case of the first letter that has one; keep the rest mixed.
    i = next(i for i, c in enumerate(body) if c.isalpha())
    flipped = body[:i] + body[i].swapcase() + body[i + 1 :]
    if flipped in (flipped.lower(), flipped.upper()):
        pytest.skip("flipping made the address single-case, which carries no checksum")
    with pytest.raises(InvalidInstrument):
        instruments.validate_crypto_address("0x" + flipped, "ethereum")


def test_one_ethereum_address_in_two_cases_is_one_instrument():
    lower = instruments.validate_crypto_address(EIP55_VECTORS[4].lower(), "ethereum")
    mixed = instruments.validate_crypto_address(EIP55_VECTORS[4], "ethereum")
    assert lower == mixed
    assert (
        PayoutInstrument(kind="crypto", identifier=lower).fingerprint
        == PayoutInstrument(kind="crypto", identifier=EIP55_VECTORS[4].lower()).fingerprint
    )


@pytest.mark.parametrize(
    "address,network",
    [
        ("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3", "bitcoin"),  # last char changed
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", "bitcoin"),  # bad bech32 checksum
        ("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", "bitcoin"),  # a tron address on bitcoin
        ("0x52908400098527886e0f7030069857d2e4169ee", "ethereum"),  # 39 hex digits
        ("0x52908400098527886E0f7030069857d2e4169ee7", "ethereum"),  # mixed case, bad checksum
        ("52908400098527886e0f7030069857d2e4169ee7", "ethereum"),  # no 0x
        ("0x5290840009852788 6e0f7030069857d2e4169ee7", "ethereum"),  # not hex
        ("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "tron"),
        ("anything", "dogecoin"),
    ],
)
def test_invalid_crypto_addresses(address, network):
    with pytest.raises(InvalidInstrument):
        instruments.validate_crypto_address(address, network)


def test_a_card_number_is_never_accepted_as_a_card_token():
    with pytest.raises(InvalidInstrument):
        instruments.validate_card_token("4242 4242 4242 4242")
    assert instruments.validate_card_token("tok_visa_4242abcd") == "tok_visa_4242abcd"
