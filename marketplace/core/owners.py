"""How the market names an organization outside its own tables: ``org:<public id>``. The ledger
knows owners only as such opaque strings; metering sources and idempotency keys are namespaced by
the same string. Every caller builds it here."""

from __future__ import annotations

from marketplace.models import Organization


def ledger_owner(organization: Organization) -> str:
    """The organization as an owner of ledger accounts (and namespace of its other keys)."""
    return f"org:{organization.public_id}"
