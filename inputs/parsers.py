"""Request parsers that refuse, as a 400, any text PostgreSQL cannot store (NUL, lone
surrogates), wherever it sits in a JSON body or form: a field the serializer validates, a key,
a value passed through untouched (a provider's `payment_method`), an uploaded file's name."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from . import rules

# JSON nested deeper than this is no request of ours; Python's parser would hit its recursion
# limit (an uncaught RecursionError) somewhere around 1,000 levels.
MAX_JSON_DEPTH = 32


def _refuse_unstorable(value, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
    if isinstance(value, str):
        bad = rules.unstorable_character(value)
        if bad is not None:
            raise ParseError(
                f"The body contains a character that cannot be stored (U+{ord(bad):04X})."
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_unstorable(key, depth + 1)
            _refuse_unstorable(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _refuse_unstorable(item, depth + 1)


class StrictJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON nested too deeply.") from None
        _refuse_unstorable(data)
        return data


def _refuse_unstorable_form(data) -> None:
    for key, values in data.lists():
        _refuse_unstorable(key)
        for value in values:
            _refuse_unstorable(value)


class StrictFormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        _refuse_unstorable_form(data)
        return data


class StrictMultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        _refuse_unstorable_form(parsed.data)
        for key, uploads in parsed.files.lists():
            _refuse_unstorable(key)
            for upload in uploads:
                _refuse_unstorable(upload.name or "")
        return parsed
