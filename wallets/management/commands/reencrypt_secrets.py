"""Re-encrypt every stored secret under the newest key of GAME_PROVIDER_SECRET_KEYS.

Rotation of the secret-encryption key (docs/security.md):
1. prepend the new key to GAME_PROVIDER_SECRET_KEYS (keep the old one after it), restart;
2. `manage.py reencrypt_secrets` — every token is re-encrypted under the new key;
3. `manage.py reencrypt_secrets --check` exits 0 once nothing needs an older key; then drop
   the old key and restart.

Covers game-provider secrets (GameProvider.secret_ciphertext) and every column of any
installed model stored through `secret_box.EncryptedTextField` / `EncryptedKeysJSONField`
(payment providers' API keys, webhook secrets and secret options), found through the app
registry, so wallets needs to import no higher app. Each table is rewritten in one
transaction, its rows locked, so an admin save cannot interleave. A token no configured key
opens is reported and left as it is (the command then fails): it needs its old key back.
"""

import json

from cryptography.fernet import InvalidToken
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import models, transaction
from django.db.models.functions import Cast

from wallets import secret_box
from wallets.models import GameProvider


class Command(BaseCommand):
    help = "Re-encrypt stored provider secrets under the newest secret-encryption key."

    def add_arguments(self, parser):
        parser.add_argument(
            "--check",
            action="store_true",
            help="Change nothing; exit 1 if any stored secret still needs an older key.",
        )

    def handle(self, *args, check=False, **options):
        stale = unreadable = rotated = 0
        for label, column, rows in self._stored_tokens():
            for pk, tokens, write in rows:
                for token in tokens:
                    if secret_box.is_current(token):
                        continue
                    try:
                        secret_box.decrypt(token)
                    except InvalidToken:
                        unreadable += 1
                        self.stderr.write(f"{label} #{pk} {column}: no configured key opens it")
                        continue
                    stale += 1
                if not check:
                    rotated += write()
        if check:
            self.stdout.write(
                f"{stale} stored secret(s) need an older key, {unreadable} unreadable."
            )
            if stale or unreadable:
                raise CommandError("Not every stored secret is under the newest key.")
            return
        self.stdout.write(f"{rotated} row(s) re-encrypted under the newest key.")
        if unreadable:
            raise CommandError(
                f"{unreadable} stored secret(s) open with no configured key: put the old key "
                "back in GAME_PROVIDER_SECRET_KEYS and run again, or enter those secrets anew."
            )

    def _stored_tokens(self):
        """(table label, column, rows) per encrypted column; each row is (pk, its tokens, a
        function that rewrites the row under the newest key and returns 1 if it changed)."""
        yield ("wallets.GameProvider", "secret_ciphertext", self._game_providers())
        for model in apps.get_models():
            for field in secret_box.encrypted_fields(model):
                yield model._meta.label, field.name, self._encrypted_column(model, field)

    def _game_providers(self):
        with transaction.atomic():
            providers = GameProvider.objects.select_for_update().order_by("pk")
            for pk, token in providers.values_list("pk", "secret_ciphertext"):

                def write(pk=pk, token=token):
                    try:
                        fresh = secret_box.cipher().rotate(token.encode()).decode()
                    except InvalidToken:
                        return 0
                    GameProvider.objects.filter(pk=pk).update(secret_ciphertext=fresh)
                    return 1

                yield pk, [token] if token else [], write

    def _encrypted_column(self, model, field):
        is_json = isinstance(field, secret_box.EncryptedKeysJSONField)
        with transaction.atomic():
            # The raw column (text), not the decrypted attribute the model would give.
            rows = (
                model._default_manager.select_for_update()
                .order_by("pk")
                .annotate(raw=Cast(field.name, output_field=models.TextField()))
                .values_list("pk", "raw")
            )
            for pk, raw in rows:
                if not raw:
                    continue
                if is_json:
                    stored = json.loads(raw)
                    if not isinstance(stored, dict):
                        continue
                    tokens = [v for k, v in stored.items() if k in field.secret_keys and v]
                else:
                    stored, tokens = raw, [raw]

                def write(pk=pk, stored=stored, tokens=tokens):
                    if not tokens or all(secret_box.is_current(t) for t in tokens):
                        return 0
                    if is_json:
                        clear = field.open_keys(stored)
                    else:
                        clear = secret_box.open_or_unreadable(stored, field.name)
                    # The field encrypts under the newest key on the way in; an unreadable
                    # value goes back as the token it was.
                    model._default_manager.filter(pk=pk).update(**{field.name: clear})
                    return 1

                yield pk, tokens, write
