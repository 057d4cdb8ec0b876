"""The portal's lease forms: list filters, a provider's reclaim notice, the statement's month and
currency."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from marketplace.leases.queries import LeaseRole
from marketplace.models import (
    LeaseStatus,
    Market,
)
from marketplace.portal.forms import UtcDateTimeField, utc_input


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
        return {"at": utc_input(now.replace(minute=0, second=0, microsecond=0) + notice)}


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
