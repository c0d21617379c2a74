from celery import shared_task

from . import services


@shared_task(acks_late=True)
def roll_up_system_balances() -> int:
    return services.roll_up_system_balances()
