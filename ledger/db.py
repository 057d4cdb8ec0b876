"""Large statements on Django's connection."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.db import connection


@contextlib.contextmanager
def raw_cursor() -> Iterator[Any]:
    """psycopg's cursor on Django's connection (and so its transaction), without Django's
    per-statement wrapper: for statements with large array parameters and COPY, where the wrapper
    costs more than the statement. Database errors are still raised as Django's."""
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        yield cursor
