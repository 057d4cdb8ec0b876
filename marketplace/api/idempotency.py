"""Idempotency-Key for POSTs that create something.

Same key and same body → the stored response is replayed (``Idempotent-Replayed: true``).
Same key, different body → 422. Same key while the first request is still running → 409.

The first request runs inside one transaction that holds a transaction-level advisory lock on
(scope, key) and inserts the record with its response before committing, so the effect and the
record commit together or not at all. A crash leaves no lock behind (PostgreSQL releases it with
the transaction) and no record (so the retry runs afresh). Only 2xx responses are stored; an error
rolls back and leaves the key free to be used again.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from marketplace.core.errors import Conflict, InvalidInput, Unprocessable

HEADER = "Idempotency-Key"
View = TypeVar("View")
Handler = Callable[..., Response]


def fingerprint(request: Request) -> str:
    body = request.body
    try:
        canonical = json.dumps(json.loads(body or b"null"), sort_keys=True, separators=(",", ":"))
        payload = canonical.encode()
    except ValueError:
        payload = body
    digest = hashlib.sha256()
    for part in (request.method or "", request.path, payload):
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


# Plain statements, not the ORM: they run on every create request.
_SELECT = (
    "SELECT fingerprint, response_status, response_body FROM marketplace_idempotencyrecord "
    "WHERE scope = %s AND key = %s"
)
_INSERT = (
    "INSERT INTO marketplace_idempotencyrecord (scope, key, fingerprint, method, path, "
    "response_status, response_body, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s)"
)


def _lock_and_look_up(scope: str, key: str) -> tuple[bool, tuple[Any, ...] | None]:
    """Take the transaction-level lock on (scope, key) and read the key's record: one round
    trip (psycopg's pipeline mode sends both statements at once; the transaction's BEGIN it
    still sends alone, before them).
    The record is read by a statement of its own, after the lock's: under READ COMMITTED its
    snapshot is taken when it starts, so it sees a record the lock's previous holder committed."""
    connection.ensure_connection()
    raw = connection.connection
    with (
        connection.wrap_database_errors,
        raw.pipeline(),
        psycopg.Cursor(raw) as lock,
        psycopg.Cursor(raw) as look_up,
    ):
        lock.execute("SELECT pg_try_advisory_xact_lock(%s)", [_lock_id(scope, key)])
        look_up.execute(_SELECT, [scope, key])
        (locked,) = lock.fetchone() or (False,)
        return bool(locked), look_up.fetchone()


def _lock_id(scope: str, key: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"{scope}\0{key}".encode()).digest()[:8], "big", signed=True
    )


def _clean_key(request: Request) -> str:
    key = request.headers.get(HEADER, "")
    if not key:
        raise InvalidInput(
            _("Send an Idempotency-Key header (e.g. a UUID) with every create request."),
            code="idempotency_key_required",
            field=HEADER,
        )
    if len(key) > 255 or not key.isprintable():
        raise InvalidInput(
            _("The Idempotency-Key must be 1–255 printable characters."),
            code="idempotency_key_invalid",
            field=HEADER,
        )
    return key


def _stored(response: Response) -> Any:
    """What a replay returns: the response, less anything meant to be shown only once."""
    return getattr(response, "stored_data", response.data)


def idempotent(handler: Handler) -> Handler:
    """Wrap a view's ``post``; the view supplies ``idempotency_scope(request, **kwargs)``."""

    @functools.wraps(handler)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = _clean_key(request)
        scope: str = view.idempotency_scope(request, **kwargs)
        print_ = fingerprint(request)
        with transaction.atomic(), connection.cursor() as cursor:
            locked, record = _lock_and_look_up(scope, key)
            if not locked:
                raise Conflict(
                    _("A request with this Idempotency-Key is still in progress; retry later."),
                    code="idempotency_request_in_flight",
                    field=HEADER,
                )
            if record is not None:
                fingerprint_, status, body = record
                if fingerprint_ != print_:
                    raise Unprocessable(
                        _("This Idempotency-Key was used with a different request."),
                        code="idempotency_key_reused",
                        field=HEADER,
                    )
                return Response(
                    json.loads(body) if isinstance(body, str | bytes) else body,
                    status=status,
                    headers={"Idempotent-Replayed": "true"},
                )
            response = handler(view, request, *args, **kwargs)
            if 200 <= response.status_code < 300:
                cursor.execute(
                    _INSERT,
                    [
                        scope,
                        key,
                        print_,
                        request.method or "",
                        request.path[:500],
                        response.status_code,
                        JSONRenderer().render(_stored(response)).decode(),
                        timezone.now(),
                    ],
                )
            else:
                transaction.set_rollback(True)
            return response

    return wrapper
