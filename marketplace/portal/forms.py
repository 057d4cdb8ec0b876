"""Form pieces every portal form shares: attaching a domain error to its field, UTC date-time input,
and comma-separated codes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone

from marketplace.core.errors import DomainError


def attach(form: forms.Form, error: DomainError) -> None:
    """Show a service's error inline, next to its field when the form has one."""
    field = error.field if error.field in form.fields else None
    form.add_error(field, error.message)


# --------------------------------------------------------------------------- market


def split_codes(text: str) -> list[str]:
    """``"cn-gs, CN-SH"`` → ``["CN-GS", "CN-SH"]``; the services check each code."""
    return [code.strip().upper() for code in text.split(",") if code.strip()]


class UtcDateTimeField(forms.DateTimeField):
    """A ``datetime-local`` input, read as UTC whatever time zone is active."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def to_python(self, value: Any) -> dt.datetime | None:
        with timezone.override(dt.UTC):
            return super().to_python(value)


def utc_input(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")
