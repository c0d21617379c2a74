"""One input discipline for every API and form: money, identifiers, countries, dates, text.

This package sits below every app (it imports no app of ours; the import-linter contract
`inputs-below-apps` in pyproject.toml keeps it so), so the ledger, compliance, payments,
reconciliation and the config wiring all take their fields from here and no app keeps a looser
copy. `rules` holds the plain checks (usable from services and management commands),
`fields` the DRF serializer fields, `forms` the Django form fields, `parsers` the request
parsers that refuse unstorable text anywhere in a body.
"""
