"""The portal's account forms: sign-up, a new organization, an invitation, an API key."""

from __future__ import annotations

import pycountry
from django import forms
from django.utils.translation import gettext_lazy as _

from marketplace.models import (
    Role,
    Scope,
)


def country_choices() -> list[tuple[str, str]]:
    countries = sorted(
        ((c.alpha_2, f"{c.name} ({c.alpha_2})") for c in pycountry.countries),
        key=lambda choice: choice[1],
    )
    return [("", "—"), *countries]


class SignUpForm(forms.Form):
    email = forms.EmailField(label=_("Email"))
    full_name = forms.CharField(label=_("Full name"), max_length=200, required=False)
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput, strip=False)


class OrganizationForm(forms.Form):
    legal_name = forms.CharField(label=_("Legal name"), max_length=200)
    country = forms.ChoiceField(label=_("Country"), choices=country_choices)
    registration_id = forms.CharField(
        label=_("Registration id"),
        max_length=64,
        help_text=_("e.g. the unified social credit code or company number"),
    )
    is_provider = forms.BooleanField(label=_("We provide compute"), required=False)
    is_buyer = forms.BooleanField(label=_("We buy compute"), required=False)


class InvitationForm(forms.Form):
    email = forms.EmailField(label=_("Email"))
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.TRADER)


class ApiKeyForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"),
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[Scope.READ],
    )
