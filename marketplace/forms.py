"""Portal forms. They validate shape only; rules live in services, whose DomainErrors the views
attach to the named field."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pycountry
from django import forms
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from marketplace.errors import DomainError
from marketplace.models import (
    DeviceModel,
    Fill,
    Interconnect,
    LeaseStatus,
    Market,
    OrderStatus,
    Organization,
    Placement,
    Pool,
    QuantityKind,
    Role,
    Scope,
    Site,
)
from marketplace.queries import LeaseRole
from marketplace.services import OfferRequest, OrderRequest, PoolRequest, SiteRequest


def attach(form: forms.Form, error: DomainError) -> None:
    """Show a service's error inline, next to its field when the form has one."""
    field = error.field if error.field in form.fields else None
    form.add_error(field, error.message)


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


# --------------------------------------------------------------------------- market


def _codes(text: str) -> list[str]:
    """``"cn-gs, CN-SH"`` → ``["CN-GS", "CN-SH"]``; the services check each code."""
    return [code.strip().upper() for code in text.split(",") if code.strip()]


class UtcDateTimeField(forms.DateTimeField):
    """A ``datetime-local`` input, read as UTC whatever time zone is active."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def to_python(self, value: Any) -> dt.datetime | None:
        with timezone.override(dt.UTC):
            return super().to_python(value)


class DeviceChoiceField(forms.ModelMultipleChoiceField[DeviceModel]):
    def label_from_instance(self, obj: DeviceModel) -> str:
        return f"{obj} · {obj.scu().normalize():f} SCU"


def _utc_input(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")


class OrderForm(forms.Form):
    market = forms.ModelChoiceField(
        label=_("Market"),
        queryset=Market.objects.filter(active=True).order_by("slug"),
        to_field_name="slug",
        empty_label=None,
    )
    quantity = forms.DecimalField(label=_("Quantity"), max_digits=12, decimal_places=3)
    limit_price = forms.DecimalField(label=_("Limit price"), max_digits=14, decimal_places=6)
    price_per = forms.ChoiceField(
        label=_("Quantity and price in"),
        choices=QuantityKind.choices,
        initial=QuantityKind.UNITS,
        help_text=_("Units and a price per unit-hour, or SCU and a price per SCU-hour."),
    )
    duration_hours = forms.IntegerField(label=_("Duration (hours)"), initial=1)
    earliest_start = UtcDateTimeField(label=_("Earliest start (UTC)"))
    latest_start = UtcDateTimeField(label=_("Latest start (UTC)"))
    device_models = DeviceChoiceField(
        label=_("Device models"),
        queryset=DeviceModel.objects.filter(active=True).order_by("vendor", "name"),
        to_field_name="slug",
        required=False,
        help_text=_("None chosen: any device."),
        widget=forms.SelectMultiple(attrs={"size": 8}),
    )
    allowed_regions = forms.CharField(
        label=_("Allowed regions"),
        required=False,
        help_text=_("ISO 3166-2 codes, comma-separated, e.g. CN-GS, CN-NM"),
    )
    allowed_jurisdictions = forms.CharField(
        label=_("Allowed jurisdictions"),
        required=False,
        help_text=_("Country codes or EU, comma-separated"),
    )
    min_renewable_share = forms.DecimalField(
        label=_("Minimum renewable share"),
        required=False,
        max_digits=5,
        decimal_places=4,
        help_text=_("Between 0 and 1, e.g. 0.5"),
    )
    max_pue = forms.DecimalField(
        label=_("Maximum PUE"), required=False, max_digits=4, decimal_places=2
    )
    verified_only = forms.BooleanField(label=_("Verified pools only"), required=False)
    placement = forms.ChoiceField(label=_("Placement"), choices=Placement.choices)
    fill = forms.ChoiceField(label=_("Fill"), choices=Fill.choices)

    @classmethod
    def initial_for(cls, now: dt.datetime) -> dict[str, Any]:
        start = now.replace(second=0, microsecond=0) + dt.timedelta(hours=1)
        return {
            "earliest_start": _utc_input(start),
            "latest_start": _utc_input(start + dt.timedelta(hours=6)),
        }

    def order_request(self) -> OrderRequest:
        data = self.cleaned_data
        return OrderRequest(
            market=data["market"],
            quantity=data["quantity"],
            quantity_kind=data["price_per"],
            price_per=data["price_per"],
            limit_price=data["limit_price"],
            duration_hours=data["duration_hours"],
            earliest_start=data["earliest_start"],
            latest_start=data["latest_start"],
            device_models=[device.slug for device in data["device_models"]],
            allowed_regions=_codes(data["allowed_regions"]),
            allowed_jurisdictions=_codes(data["allowed_jurisdictions"]),
            min_renewable_share=data["min_renewable_share"],
            max_pue=data["max_pue"],
            verified_only=data["verified_only"],
            placement=data["placement"],
            fill=data["fill"],
        )


class OrderFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Status"), choices=[("", _("All")), *OrderStatus.choices], required=False
    )


class SiteForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    country = forms.ChoiceField(label=_("Country"), choices=country_choices)
    region = forms.CharField(label=_("Region"), max_length=8, help_text=_("ISO 3166-2, e.g. CN-GS"))
    city = forms.CharField(label=_("City"), max_length=64)
    jurisdiction = forms.CharField(
        label=_("Jurisdiction"), max_length=16, help_text=_("Data residency, e.g. CN, EU, US")
    )
    pue = forms.DecimalField(label=_("PUE"), max_digits=4, decimal_places=2)
    renewable_share = forms.DecimalField(
        label=_("Renewable share"),
        max_digits=5,
        decimal_places=4,
        help_text=_("Between 0 and 1, e.g. 0.5"),
    )
    carbon_g_per_kwh = forms.IntegerField(label=_("Grid carbon (gCO₂/kWh)"), min_value=0)
    certifications = forms.CharField(
        label=_("Certifications"), required=False, help_text=_("Comma-separated, e.g. ISO27001")
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "site_%s")  # unique ids: one page holds three forms
        super().__init__(*args, **kwargs)

    def site_request(self) -> SiteRequest:
        data = self.cleaned_data
        return SiteRequest(
            name=data["name"],
            country=data["country"],
            region=data["region"],
            city=data["city"],
            jurisdiction=data["jurisdiction"],
            pue=data["pue"],
            renewable_share=data["renewable_share"],
            carbon_g_per_kwh=data["carbon_g_per_kwh"],
            certifications=[c.strip() for c in data["certifications"].split(",") if c.strip()],
        )


class PoolForm(forms.Form):
    site = forms.ModelChoiceField(
        label=_("Site"), queryset=Site.objects.none(), to_field_name="public_id"
    )
    name = forms.CharField(label=_("Name"), max_length=100)
    device_model = forms.ModelChoiceField(
        label=_("Device model"),
        queryset=DeviceModel.objects.filter(active=True).order_by("vendor", "name"),
        to_field_name="slug",
    )
    units = forms.IntegerField(label=_("Units"), min_value=1)
    devices_per_unit = forms.IntegerField(label=_("Devices per unit"), min_value=1, initial=1)
    cpu_cores = forms.IntegerField(label=_("CPU cores per unit"), min_value=0, required=False)
    ram_gb = forms.IntegerField(label=_("RAM per unit (GB)"), min_value=0, required=False)
    disk_gb = forms.IntegerField(label=_("Disk per unit (GB)"), min_value=0, required=False)
    interconnect = forms.ChoiceField(label=_("Interconnect"), choices=Interconnect.choices)

    def __init__(self, *args: Any, organization: Organization, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "pool_%s")
        super().__init__(*args, **kwargs)
        sites = Site.objects.filter(organization=organization).order_by("name")
        self.fields["site"].queryset = sites  # type: ignore[attr-defined]

    def pool_request(self) -> PoolRequest:
        data = self.cleaned_data
        return PoolRequest(
            site=data["site"],
            name=data["name"],
            device_model=data["device_model"].slug,
            units=data["units"],
            devices_per_unit=data["devices_per_unit"],
            cpu_cores=data["cpu_cores"] or 0,
            ram_gb=data["ram_gb"] or 0,
            disk_gb=data["disk_gb"] or 0,
            interconnect=data["interconnect"],
        )


class OfferForm(forms.Form):
    market = forms.ModelChoiceField(
        label=_("Market"),
        queryset=Market.objects.filter(active=True).order_by("slug"),
        to_field_name="slug",
        empty_label=None,
    )
    pool = forms.ModelChoiceField(
        label=_("Pool"), queryset=Pool.objects.none(), to_field_name="public_id"
    )
    units = forms.IntegerField(label=_("Units"))
    available_from = UtcDateTimeField(label=_("Available from (UTC)"))
    available_until = UtcDateTimeField(label=_("Available until (UTC)"))
    min_price = forms.DecimalField(
        label=_("Minimum price per unit-hour"), max_digits=14, decimal_places=6
    )
    min_lease_hours = forms.IntegerField(label=_("Minimum lease (hours)"), initial=1)
    max_lease_hours = forms.IntegerField(label=_("Maximum lease (hours)"), initial=720)

    def __init__(self, *args: Any, organization: Organization, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "offer_%s")
        super().__init__(*args, **kwargs)
        pools = Pool.objects.filter(site__organization=organization).select_related("site")
        self.fields["pool"].queryset = pools.order_by("site__name", "name")  # type: ignore[attr-defined]

    @classmethod
    def initial_for(cls, now: dt.datetime) -> dict[str, Any]:
        start = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
        return {
            "available_from": _utc_input(start),
            "available_until": _utc_input(start + dt.timedelta(days=7)),
        }

    def offer_request(self) -> OfferRequest:
        data = self.cleaned_data
        return OfferRequest(
            market=data["market"],
            pool=data["pool"],
            units=data["units"],
            available_from=data["available_from"],
            available_until=data["available_until"],
            min_price=data["min_price"],
            min_lease_hours=data["min_lease_hours"],
            max_lease_hours=data["max_lease_hours"],
        )


class LeaseFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Status"), choices=[("", _("All")), *LeaseStatus.choices], required=False
    )
    role = forms.ChoiceField(
        label=_("Side"), choices=[("", _("Both")), *LeaseRole.choices], required=False
    )


class ReclaimForm(forms.Form):
    at = UtcDateTimeField(label=_("Take the units back at (UTC)"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        hours = settings.LEASE_RECLAIM_NOTICE_HOURS
        self.fields["at"].help_text = ngettext(
            "At least %(hours)s hour from now. The buyer gets the rest of the lease's money back "
            "and a penalty share of the undelivered value.",
            "At least %(hours)s hours from now. The buyer gets the rest of the lease's money back "
            "and a penalty share of the undelivered value.",
            hours,
        ) % {"hours": hours}

    @classmethod
    def initial_for(cls, now: dt.datetime) -> dict[str, Any]:
        notice = dt.timedelta(hours=settings.LEASE_RECLAIM_NOTICE_HOURS + 1)
        return {"at": _utc_input(now.replace(minute=0, second=0, microsecond=0) + notice)}


def _currencies() -> list[tuple[str, str]]:
    currencies = Market.objects.order_by("-active", "pk").values_list("currency", flat=True)
    return [(c, c) for c in dict.fromkeys(currencies)]


class StatementForm(forms.Form):
    month = forms.RegexField(
        label=_("Month (UTC)"),
        regex=r"^\d{4}-(0[1-9]|1[0-2])$",
        widget=forms.TextInput(attrs={"type": "month"}),
        error_messages={"invalid": _("Give the month as yyyy-mm.")},
    )
    currency = forms.ChoiceField(label=_("Currency"), choices=_currencies)

    @classmethod
    def initial_for(cls, now: dt.datetime) -> dict[str, Any]:
        choices = _currencies()
        return {"month": now.strftime("%Y-%m"), "currency": choices[0][0] if choices else ""}
