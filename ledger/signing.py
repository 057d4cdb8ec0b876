"""The Ed25519 key that signs ledger checkpoints.

``LEDGER_SIGNING_KEY`` (or ``LEDGER_SIGNING_KEY_FILE``) holds the 32-byte private seed, base64.
Production requires it. In development a key is generated once under ``var/`` and kept there.
"""

from __future__ import annotations

import base64
import functools
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings


@functools.cache
def signing_key() -> Ed25519PrivateKey:
    encoded: str = settings.LEDGER_SIGNING_KEY
    if not encoded:
        encoded = _development_key(Path(settings.VAR_DIR) / "ledger-signing.key")
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(encoded))


def public_key_bytes() -> bytes:
    return signing_key().public_key().public_bytes_raw()


def _development_key(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = Ed25519PrivateKey.generate().private_bytes_raw()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(base64.b64encode(seed).decode())
    return path.read_text().strip()
