"""Celery tasks: thin, idempotent wrappers (alerts are deduplicated, so a rerun is harmless)."""

from celery import shared_task

from wallets.models import Player

from . import monitoring, services


@shared_task(acks_late=True)
def monitor_entry(entry_id: int) -> int:
    return len(monitoring.monitor_entry(entry_id=entry_id))


@shared_task(acks_late=True)
def sweep_ledger() -> int:
    return monitoring.sweep_ledger()


@shared_task(acks_late=True)
def monitor_active_players() -> int:
    return monitoring.monitor_active_players()


@shared_task(acks_late=True)
def expire_kyc_documents() -> int:
    return services.expire_kyc_documents()


@shared_task(acks_late=True)
def screen_player(player_id: int) -> int:
    player = Player.objects.filter(pk=player_id).first()
    return len(services.screen_player(player=player)) if player else 0


@shared_task(acks_late=True)
def rescreen_all_players() -> int:
    return services.rescreen_all_players()
