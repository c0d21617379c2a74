import pytest

from payments import instruments
from payments.errors import InvalidInstrument


@pytest.mark.parametrize(
    "raw,normalised",
    [
        ("DE89 3704 0044 0532 0130 00", "DE89370400440532013000"),
        ("gb82 west 1234 5698 7654 32", "GB82WEST12345698765432"),
        ("MT84MALT011000012345MTLCAST001S", "MT84MALT011000012345MTLCAST001S"),
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
    ],
)
def test_invalid_ibans_are_refused(bad):
    with pytest.raises(InvalidInstrument):
        instruments.normalise_iban(bad)


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


@pytest.mark.parametrize(
    "address,network",
    [
        ("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3", "bitcoin"),  # last char changed
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", "bitcoin"),  # bad bech32 checksum
        ("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", "bitcoin"),  # a tron address on bitcoin
        ("0x52908400098527886e0f7030069857d2e4169ee", "ethereum"),  # 39 hex digits
        ("0x52908400098527886E0f7030069857d2e4169ee7", "ethereum"),  # mixed case unchecked
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
