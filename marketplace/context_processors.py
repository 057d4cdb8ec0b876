from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from marketplace import queries
from marketplace.models import User


def navigation(request: HttpRequest) -> dict[str, Any]:
    """What the navigation shows: the user's organizations, the current one, site-wide roles."""
    user = getattr(request, "user", None)
    if not isinstance(user, User):
        return {}
    memberships = list(queries.memberships_of(user))
    current_id = request.session.get("organization")
    current = next(
        (m for m in memberships if str(m.organization.public_id) == current_id),
        memberships[0] if memberships else None,
    )
    return {"nav_memberships": memberships, "nav_current": current}
