from celery import shared_task

from . import bonus_services, services


@shared_task(acks_late=True)
def roll_up_system_balances() -> int:
    return services.roll_up_system_balances()


@shared_task(acks_late=True)
def expire_bonuses() -> int:
    """Forfeit bonuses past their expiry (scheduled by beat, migration 0005)."""
    return bonus_services.expire_bonuses()
