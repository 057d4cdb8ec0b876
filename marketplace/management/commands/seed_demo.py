"""Create the demo logins printed by `make run` (idempotent; refused in production)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from marketplace.models import KybStatus, Membership, Organization, Role, SiteRole, User

DEMO_PASSWORD = "demo-password"  # noqa: S105 - a published demo login, never in production
DEMO_DOMAIN = "demo.suanli.test"


class Command(BaseCommand):
    help = "Create demo users and organizations for local development."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo refuses to run with DJANGO_ENV=production")
        operator = self._user("operator", SiteRole.OPERATOR, "Demo Operator")
        self._user("regulator", SiteRole.REGULATOR, "Demo Regulator")
        for login, legal_name, country, registration, provider in [
            ("provider", "Gansu Green Compute Co., Ltd.", "CN", "DEMO-PROVIDER-001", True),
            ("buyer", "Shanghai Model Works Ltd.", "CN", "DEMO-BUYER-001", False),
        ]:
            user = self._user(login, SiteRole.NONE, f"Demo {login.title()}")
            organization, _created = Organization.objects.get_or_create(
                country=country,
                registration_id=registration,
                defaults={
                    "legal_name": legal_name,
                    "is_provider": provider,
                    "is_buyer": not provider,
                    "kyb_status": KybStatus.APPROVED,
                    "kyb_decided_at": timezone.now(),
                    "kyb_decided_by": operator,
                },
            )
            Membership.objects.get_or_create(
                user=user, organization=organization, defaults={"role": Role.OWNER}
            )
        self.stdout.write(f"demo logins ready (password {DEMO_PASSWORD!r})")

    def _user(self, login: str, site_role: str, full_name: str) -> User:
        email = f"{login}@{DEMO_DOMAIN}"
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(
                email, DEMO_PASSWORD, full_name=full_name, site_role=site_role
            )
        return user
