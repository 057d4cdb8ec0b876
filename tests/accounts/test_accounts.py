"""Sign up, log in and out, reset a password, register an organization, invite, approve."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from marketplace.core.access import principal_for_member
from marketplace.core.errors import Forbidden
from marketplace.models import Invitation, KybStatus, Membership, Organization, Role, User
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_sign_up_creates_the_account_and_logs_in() -> None:
    client = Client()

    response = client.post(
        reverse("signup"),
        {"email": " New@Example.COM ", "full_name": "Li Wei", "password": PASSWORD},
    )

    assert response.status_code == 302
    user = User.objects.get()
    assert (user.email, user.full_name) == ("new@example.com", "Li Wei")
    assert user.check_password(PASSWORD)
    assert client.get(reverse("home")).context["user"] == user


def test_sign_up_with_a_taken_email_shows_the_error_and_changes_nothing() -> None:
    existing = UserFactory.create(email="taken@example.com")
    before = list(User.objects.values_list("pk", "email", "password"))

    response = Client().post(
        reverse("signup"), {"email": "TAKEN@example.com", "password": "another-long-pass-7"}
    )

    assert response.status_code == 400
    assert response.context["form"].errors == {
        "email": ["An account with this email already exists."]
    }
    assert "An account with this email already exists." in response.content.decode()
    assert list(User.objects.values_list("pk", "email", "password")) == before
    assert User.objects.get().pk == existing.pk


def test_sign_up_with_a_weak_password_is_refused_inline() -> None:
    response = Client().post(reverse("signup"), {"email": "a@example.com", "password": "123"})

    assert response.status_code == 400
    assert "password" in response.context["form"].errors
    assert User.objects.count() == 0


def test_log_in_and_out() -> None:
    UserFactory.create(email="li@example.com")
    client = Client()

    bad = client.post(reverse("login"), {"username": "li@example.com", "password": "wrong"})
    good = client.post(reverse("login"), {"username": "li@example.com", "password": PASSWORD})
    out = client.post(reverse("logout"))

    assert bad.status_code == 200 and not bad.context["user"].is_authenticated
    assert good.status_code == 302
    assert out.status_code == 302
    assert "_auth_user_id" not in client.session


def test_password_reset_sends_a_working_link_by_email() -> None:
    user = UserFactory.create(email="reset@example.com")
    client = Client()

    client.post(reverse("password_reset"), {"email": "reset@example.com"})

    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/accounts/reset/\S+/)", str(mail.outbox[0].body))
    assert link is not None
    form_page = client.get(link.group(1), follow=True)
    client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "brand-new-pass-42", "new_password2": "brand-new-pass-42"},
    )
    user.refresh_from_db()
    assert user.check_password("brand-new-pass-42")


def test_register_an_organization_makes_the_user_its_owner_pending_kyb(
    logged_in: Callable[[User], Client],
) -> None:
    user = UserFactory.create(email="founder@example.com")
    client = logged_in(user)

    response = client.post(
        reverse("organization-create"),
        {
            "legal_name": "Ningxia Compute Ltd.",
            "country": "CN",
            "registration_id": "91640000X",
            "is_provider": "on",
        },
    )

    organization = Organization.objects.get()
    assert response.status_code == 302
    assert (organization.kyb_status, organization.is_provider, organization.is_buyer) == (
        KybStatus.PENDING,
        True,
        False,
    )
    assert organization.can_trade is False
    assert Membership.objects.get().role == Role.OWNER


def test_register_an_organization_twice_is_refused_inline(
    provider: User, provider_org: Organization, logged_in: Callable[[User], Client]
) -> None:
    response = logged_in(provider).post(
        reverse("organization-create"),
        {
            "legal_name": "Copy",
            "country": "CN",
            "registration_id": provider_org.registration_id,
            "is_buyer": "on",
        },
    )

    assert response.status_code == 400
    assert response.context["form"].errors["registration_id"]
    assert Organization.objects.count() == 1


def test_an_organization_must_provide_or_buy(logged_in: Callable[[User], Client]) -> None:
    user = UserFactory.create(email="founder@example.com")

    response = logged_in(user).post(
        reverse("organization-create"),
        {"legal_name": "Nobody", "country": "CN", "registration_id": "1"},
    )

    assert response.status_code == 400
    assert response.context["form"].errors["is_buyer"]
    assert Organization.objects.count() == 0


def test_owner_invites_a_member_who_accepts_by_email_link(
    provider: User,
    provider_org: Organization,
    logged_in: Callable[[User], Client],
    django_capture_on_commit_callbacks: Any,
) -> None:
    owner = logged_in(provider)

    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post(
            reverse("invitation-create", args=[provider_org.public_id]),
            {"email": "Colleague@Provider.example", "role": "trader"},
        )

    assert response.status_code == 200
    invitation = Invitation.objects.get()
    assert (invitation.email, invitation.role) == ("colleague@provider.example", "trader")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["colleague@provider.example"]
    token = re.search(r"/invitations/([^/]+)/", str(mail.outbox[0].body))
    assert token is not None
    colleague = UserFactory.create(email="colleague@provider.example")
    accepted = logged_in(colleague).post(reverse("invitation-accept", args=[token.group(1)]))
    assert accepted.status_code == 302
    assert Membership.objects.get(user=colleague).role == Role.TRADER
    invitation.refresh_from_db()
    assert invitation.accepted_by == colleague


def test_invitation_for_someone_else_is_not_found_and_changes_nothing(
    provider: User,
    provider_org: Organization,
    stranger: User,
    logged_in: Callable[[User], Client],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        logged_in(provider).post(
            reverse("invitation-create", args=[provider_org.public_id]),
            {"email": "intended@example.com", "role": "viewer"},
        )
    token = re.search(r"/invitations/([^/]+)/", str(mail.outbox[0].body))
    assert token is not None

    response = logged_in(stranger).post(reverse("invitation-accept", args=[token.group(1)]))

    assert response.status_code == 404
    assert not Membership.objects.filter(user=stranger).exists()
    assert Invitation.objects.get().accepted_at is None


def test_a_trader_cannot_invite(
    provider_org: Organization,
    add_member: Callable[[Organization, str, str], User],
    logged_in: Callable[[User], Client],
) -> None:
    trader = add_member(provider_org, "trader@provider.example", Role.TRADER)

    response = logged_in(trader).post(
        reverse("invitation-create", args=[provider_org.public_id]),
        {"email": "x@example.com", "role": "owner"},
    )

    assert response.status_code == 404
    assert Invitation.objects.count() == 0
    assert len(mail.outbox) == 0


def test_a_stranger_cannot_see_an_organization(
    provider_org: Organization, stranger: User, logged_in: Callable[[User], Client]
) -> None:
    response = logged_in(stranger).get(reverse("organization", args=[provider_org.public_id]))

    assert response.status_code == 404
    assert provider_org.legal_name not in response.content.decode()


def test_operator_approves_kyb_in_the_admin_and_only_then_the_org_may_trade(
    operator: User, logged_in: Callable[[User], Client]
) -> None:
    owner = UserFactory.create(email="founder@example.com")
    from marketplace.accounts import services

    organization = services.create_organization(
        user=owner,
        legal_name="Pending Co",
        country="CN",
        registration_id="P-1",
        is_provider=False,
        is_buyer=True,
    )
    acting = principal_for_member(Membership.objects.get(user=owner))
    with pytest.raises(Forbidden) as refused:
        acting.require_can_trade()
    assert refused.value.code == "organization_not_approved"

    response = logged_in(operator).post(
        reverse("admin:marketplace_organization_changelist"),
        {"action": "approve", "_selected_action": [organization.pk]},
    )

    assert response.status_code == 302
    organization.refresh_from_db()
    assert (organization.kyb_status, organization.kyb_decided_by) == (KybStatus.APPROVED, operator)
    principal_for_member(Membership.objects.get(user=owner)).require_can_trade()


def test_only_operators_reach_the_admin(
    regulator: User, provider: User, logged_in: Callable[[User], Client]
) -> None:
    for user in (regulator, provider):
        response = logged_in(user).get(reverse("admin:index"))
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]


def test_a_viewer_may_read_but_not_trade(
    buyer_org: Organization, add_member: Callable[[Organization, str, str], User]
) -> None:
    viewer = add_member(buyer_org, "viewer@buyer.example", Role.VIEWER)
    acting = principal_for_member(Membership.objects.get(user=viewer))

    acting.require_scope("read")
    with pytest.raises(Forbidden) as refused:
        acting.require_can_trade()
    assert refused.value.code == "insufficient_scope"
