"""Large statements on Django's connection."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from django.db import connection


@contextlib.contextmanager
def raw_cursor() -> Iterator[Any]:
    """psycopg's cursor on Django's connection (and so its transaction), without Django's
    per-statement wrapper: for statements with large array parameters and COPY, where the wrapper
    costs more than the statement. Database errors are still raised as Django's."""
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        yield cursor


@contextlib.contextmanager
def bound_cursor() -> Iterator[psycopg.Cursor[Any]]:
    """Like ``raw_cursor``, but binding on the server whatever Django's setting: its ``%b``
    parameters travel in binary. Django's own cursor binds on the client unless told otherwise,
    quoting every element of an array into the SQL text, which the server then parses back
    (seconds, at both ends, for a batch of 50,000 transfers)."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor
