"""Template context for every portal page: the user's organizations and the one acting now."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from marketplace.accounts import queries
from marketplace.models import User


def navigation(request: HttpRequest) -> dict[str, Any]:
    """What the navigation shows: the user's organizations, the current one, site-wide roles."""
    user = getattr(request, "user", None)
    if not isinstance(user, User):
        return {}
    memberships = list(queries.memberships_of(user))
    current = queries.acting_membership(memberships, request.session.get("organization"))
    return {"nav_memberships": memberships, "nav_current": current}
