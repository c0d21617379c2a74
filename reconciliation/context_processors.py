from django.utils.functional import SimpleLazyObject

from . import selectors


def integrity_alerts(request):
    """Unacknowledged integrity alerts for the admin; queried only by a template that shows
    them (the reconciliation app index)."""
    return {"reconciliation_alerts": SimpleLazyObject(lambda: list(selectors.open_alerts()[:20]))}
