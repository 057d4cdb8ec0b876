"""Market state, one module per area; everything is importable from ``marketplace.models``."""

from marketplace.models.accounts import (
    ROLE_SCOPES,
    ApiKey,
    IdempotencyRecord,
    Invitation,
    KybStatus,
    Membership,
    Organization,
    Role,
    Scope,
    SiteRole,
    User,
    UserManager,
    normalize_email,
)
from marketplace.models.catalog import DeviceKind, DeviceModel, Precision

__all__ = [
    "ROLE_SCOPES",
    "ApiKey",
    "DeviceKind",
    "DeviceModel",
    "IdempotencyRecord",
    "Invitation",
    "KybStatus",
    "Membership",
    "Organization",
    "Precision",
    "Role",
    "Scope",
    "SiteRole",
    "User",
    "UserManager",
    "normalize_email",
]
