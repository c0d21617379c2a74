"""Compliance listens to wallets (which never imports compliance): bets ask first, ledger
entries and player profile changes are monitored after they commit. It also listens to its
own services where they need a task they may not import: a changed sanctions list sends
every player to be screened again."""

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from wallets.models import JournalEntry, Player
from wallets.signals import bet_requested

from . import services, tasks
from .models import SanctionsImport
from .monitoring import MONITORED_KINDS
from .signals import sanctions_list_imported


@receiver(bet_requested, dispatch_uid="compliance.check_bet")
def refuse_bet_of_excluded_player(sender, *, player, currency, amount, **kwargs):
    services.check_bet(player=player, currency=currency, amount=amount)


@receiver(post_save, sender=JournalEntry, dispatch_uid="compliance.monitor_entry")
def monitor_money_movement(sender, instance, created, **kwargs):
    # The entry's postings are written after this save, in the same transaction: the task
    # runs once it commits, and not at all if it rolls back.
    if created and instance.kind in MONITORED_KINDS:
        entry_id = instance.pk
        transaction.on_commit(lambda: tasks.monitor_entry.delay(entry_id))


SCREENED_FIELDS = {"first_name", "last_name", "date_of_birth", "country"}


@receiver(post_save, sender=Player, dispatch_uid="compliance.screen_player")
def screen_registered_player(sender, instance, update_fields=None, **kwargs):
    # Registration and profile updates are screened; a status change (freeze) is not.
    if update_fields is not None and not SCREENED_FIELDS & set(update_fields):
        return
    if instance.full_name:
        player_id = instance.pk
        transaction.on_commit(lambda: tasks.screen_player.delay(player_id))


@receiver(sanctions_list_imported, sender=SanctionsImport, dispatch_uid="compliance.rescreen")
def rescreen_after_list_change(sender, *, rescreen, **kwargs):
    # On commit: the re-screen reads the new list, and a rolled-back import screens nobody.
    if rescreen:
        transaction.on_commit(tasks.rescreen_all_players.delay)
