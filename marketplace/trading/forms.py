"""Portal forms. They validate shape only; rules live in services, whose DomainErrors the views
attach to the named field."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from marketplace.accounts.forms import country_choices
from marketplace.core import access
from marketplace.core.access import Reader
from marketplace.models import (
    DeviceModel,
    FillPolicy,
    Interconnect,
    Market,
    OrderStatus,
    Placement,
    Pool,
    QuantityKind,
    Site,
)
from marketplace.portal.forms import UtcDateTimeField, split_codes, utc_input
from marketplace.trading.orders import OrderRequest
from marketplace.trading.supply import OfferRequest, PoolRequest, SiteRequest


class DeviceChoiceField(forms.ModelMultipleChoiceField[DeviceModel]):
    def label_from_instance(self, obj: DeviceModel) -> str:
        return f"{obj} · {obj.scu().normalize():f} SCU"


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
    fill = forms.ChoiceField(label=_("Fill"), choices=FillPolicy.choices)

    @classmethod
    def initial_for(cls, now: dt.datetime) -> dict[str, Any]:
        start = now.replace(second=0, microsecond=0) + dt.timedelta(hours=1)
        return {
            "earliest_start": utc_input(start),
            "latest_start": utc_input(start + dt.timedelta(hours=6)),
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
            allowed_regions=split_codes(data["allowed_regions"]),
            allowed_jurisdictions=split_codes(data["allowed_jurisdictions"]),
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

    def __init__(self, *args: Any, reader: Reader, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "pool_%s")
        super().__init__(*args, **kwargs)
        sites = access.sites_visible_to(reader).order_by("name")
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

    def __init__(self, *args: Any, reader: Reader, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "offer_%s")
        super().__init__(*args, **kwargs)
        pools = access.pools_visible_to(reader).select_related("site")
        self.fields["pool"].queryset = pools.order_by("site__name", "name")  # type: ignore[attr-defined]

    @classmethod
    def initial_for(cls, now: dt.datetime) -> dict[str, Any]:
        start = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
        return {
            "available_from": utc_input(start),
            "available_until": utc_input(start + dt.timedelta(days=7)),
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
