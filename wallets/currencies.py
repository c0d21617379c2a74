"""The currencies the platform keeps wallets in, shared by the seeding migration and tests."""

# code, name, exponent (decimals), is_crypto
SEEDED_CURRENCIES = [
    ("EUR", "Euro", 2, False),
    ("USD", "US dollar", 2, False),
    ("GBP", "Pound sterling", 2, False),
    ("JPY", "Japanese yen", 0, False),
    ("BTC", "Bitcoin", 8, True),
    ("ETH", "Ether", 8, True),
    ("USDT", "Tether USD", 6, True),
]
