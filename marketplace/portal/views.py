"""The portal's home page."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render

from marketplace.portal.helpers import HtmxHttpRequest


def home(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "marketplace/home.html")
