"""The web portal: thin function views behind the access helpers."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from marketplace.accounts import queries, services
from marketplace.accounts.forms import ApiKeyForm, InvitationForm, OrganizationForm, SignUpForm
from marketplace.core.access import membership_for
from marketplace.core.errors import DomainError, NotFound
from marketplace.models import Membership, Role
from marketplace.portal.forms import attach
from marketplace.portal.helpers import HtmxHttpRequest, form_status


def _owner_membership(request: HtmxHttpRequest, org_id: str) -> Membership:
    membership = membership_for(request.user, org_id)
    if membership.role != Role.OWNER:
        raise NotFound(_("No such organization."))
    return membership


def signup(request: HtmxHttpRequest) -> HttpResponse:
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.sign_up(**form.cleaned_data)
        except DomainError as error:
            attach(form, error)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, _("Welcome! Create or join an organization to trade."))
            return redirect("home")
    return render(request, "registration/signup.html", {"form": form}, status=form_status(form))


@login_required
def organization_create(request: HtmxHttpRequest) -> HttpResponse:
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            organization = services.create_organization(user=request.user, **form.cleaned_data)
        except DomainError as error:
            attach(form, error)
        else:
            request.session["organization"] = str(organization.public_id)
            messages.success(
                request, _("Organization registered. An operator will review it (KYB).")
            )
            return redirect("organization", org_id=organization.public_id)
    return render(
        request, "marketplace/organization_form.html", {"form": form}, status=form_status(form)
    )


@login_required
def organization_detail(request: HtmxHttpRequest, org_id: str) -> HttpResponse:
    membership = membership_for(request.user, org_id)
    return render(request, "marketplace/organization.html", _org_context(membership))


def _org_context(membership: Membership, **extra: object) -> dict[str, object]:
    organization = membership.organization
    is_owner = membership.role == Role.OWNER
    return {
        "membership": membership,
        "organization": organization,
        "is_owner": is_owner,
        "members": queries.members_of(organization).order_by("user__email"),
        "invitations": queries.open_invitations_of(organization) if is_owner else [],
        "api_keys": queries.api_keys_of(organization) if is_owner else [],
        "invitation_form": extra.pop("invitation_form", InvitationForm()),
        "api_key_form": extra.pop("api_key_form", ApiKeyForm()),
        **extra,
    }


@login_required
@require_POST
def organization_switch(request: HtmxHttpRequest, org_id: str) -> HttpResponse:
    membership = membership_for(request.user, org_id)
    request.session["organization"] = str(membership.organization.public_id)
    return redirect("organization", org_id=membership.organization.public_id)


@login_required
@require_POST
def invitation_create(request: HtmxHttpRequest, org_id: str) -> HttpResponse:
    membership = _owner_membership(request, org_id)
    form = InvitationForm(request.POST)
    if form.is_valid():
        try:
            services.invite_member(
                organization=membership.organization,
                invited_by=request.user,
                now=timezone.now(),
                **form.cleaned_data,
            )
        except DomainError as error:
            attach(form, error)
        else:
            form = InvitationForm()
            messages.success(request, _("Invitation sent."))
    context = _org_context(membership, invitation_form=form)
    return _org_section(request, "invitations", context, status=form_status(form))


@login_required
@require_POST
def api_key_create(request: HtmxHttpRequest, org_id: str) -> HttpResponse:
    membership = _owner_membership(request, org_id)
    form = ApiKeyForm(request.POST)
    new_secret = None
    if form.is_valid():
        try:
            _api_key, new_secret = services.create_api_key(
                organization=membership.organization, created_by=request.user, **form.cleaned_data
            )
        except DomainError as error:
            attach(form, error)
        else:
            form = ApiKeyForm()
    context = _org_context(membership, api_key_form=form, new_secret=new_secret)
    return _org_section(request, "api-keys", context, status=form_status(form))


@login_required
@require_POST
def api_key_revoke(request: HtmxHttpRequest, org_id: str, key_id: str) -> HttpResponse:
    membership = _owner_membership(request, org_id)
    api_key = queries.api_keys_of(membership.organization).filter(public_id=key_id).first()
    if api_key is None:
        raise NotFound(_("No such API key."))
    services.revoke_api_key(api_key=api_key, now=timezone.now())
    return _org_section(request, "api-keys", _org_context(membership))


def _org_section(
    request: HtmxHttpRequest, section: str, context: dict[str, object], status: int = 200
) -> HttpResponse:
    """htmx swaps just the section; without htmx the whole page is rendered."""
    template = "marketplace/organization.html"
    if request.htmx:
        template = f"{template}#{section}"
    return render(request, template, context, status=status)


@login_required
def invitation_accept(request: HtmxHttpRequest, token: str) -> HttpResponse:
    if request.method == "POST":
        membership = services.accept_invitation(token=token, user=request.user, now=timezone.now())
        request.session["organization"] = str(membership.organization.public_id)
        messages.success(
            request, _("You joined %(org)s.") % {"org": membership.organization.legal_name}
        )
        return redirect("organization", org_id=membership.organization.public_id)
    return render(request, "marketplace/invitation.html", {"token": token})
