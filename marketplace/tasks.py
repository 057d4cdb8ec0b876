"""Every Celery task of the market, under the names the beat schedule and queued messages use
(``marketplace.tasks.<name>``). Each task lives with its domain; importing them here registers
them when Celery autodiscovers this module. Tasks take ids, are idempotent, and call one service.
"""

from marketplace.accounts.tasks import purge_idempotency_records
from marketplace.core.tasks import heartbeat
from marketplace.leases.tasks import end_due_leases, settle_leases
from marketplace.notifications.tasks import deliver_notification, retry_webhook
from marketplace.trading.tasks import expire_orders_and_offers

__all__ = [
    "deliver_notification",
    "end_due_leases",
    "expire_orders_and_offers",
    "heartbeat",
    "purge_idempotency_records",
    "retry_webhook",
    "settle_leases",
]
