"""The API under ``/api/v1/``: each domain's operations, from its own ``urls.py``."""

from marketplace.accounts import urls as accounts
from marketplace.leases import urls as leases
from marketplace.notifications import urls as notifications
from marketplace.trading import urls as trading

urlpatterns = [
    *accounts.api_urlpatterns,
    *notifications.api_urlpatterns,
    *trading.api_urlpatterns,
    *leases.api_urlpatterns,
]
