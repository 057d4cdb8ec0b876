"""Large statements on Django's connection."""

from __future__ import annotations

import contextlib
import select
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


def send_queued() -> None:
    """In psycopg's pipeline mode, wait until the server has been sent every statement queued so
    far (not their results). psycopg hands a statement to libpq, which sends what the socket takes
    at once: the rest of one with large parameters (a megabyte of arrays) would stay in libpq's
    buffer until the next result is fetched or the pipeline ends, and the server could not start
    on it meanwhile. Outside pipeline mode every statement has been sent whole already.

    The server sends nothing while it reads a statement, and the results of those before it are a
    few bytes each, so waiting only to write cannot deadlock."""
    pgconn = connection.connection.pgconn
    if not pgconn.pipeline_status:
        return
    with connection.wrap_database_errors:
        while pgconn.flush():  # 1: some is left; the socket is full
            select.select([], [pgconn.socket], [])
