"""Model rows through constant statements, for the reads and writes of every order request.

The ORM compiles a queryset's or an insert's SQL on every call, which on the order path costs
several times the statement itself. Here each statement is built once per model (and condition)
and values go the ORM's way: ``fetch`` passes each column through its field's and the backend's
database converters, then ``Model.from_db``; ``insert`` takes each field's ``pre_save`` and
``get_db_prep_save`` value and sets what the database returns (the id). No signals are sent,
and ``save()`` is not called: for models with neither. ``tests/core/test_rows.py`` compares both
with the ORM, field by field and type by type.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)
Converters = list[tuple[int, list[Callable[..., Any]], Any]]


@functools.cache
def _loading(model: type[Model]) -> tuple[list[str], Converters]:
    """A model's attribute names, in its columns' order, and the converters of those columns
    that have any (the ORM's model iterable applies the same)."""
    converters: Converters = []
    for n, field in enumerate(model._meta.concrete_fields):
        expression = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(expression) + expression.get_db_converters(
            connection
        )
        if found:
            converters.append((n, found, expression))
    return [f.attname for f in model._meta.concrete_fields], converters


def columns(model: type[Model], alias: str = "") -> str:
    """A model's columns in the order ``build`` reads them, qualified by ``alias`` if given."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f'{prefix}"{f.column}"' for f in model._meta.concrete_fields)


def build(model: type[M], values: Sequence[Any]) -> M:
    """An instance from its ``columns(model)`` values, as the ORM would load it."""
    attnames, converters = _loading(model)
    if converters:
        values = list(values)
        for n, functions, expression in converters:
            for convert in functions:
                values[n] = convert(values[n], expression, connection)
    return model.from_db(DEFAULT_DB_ALIAS, attnames, values)


@functools.cache
def _statement(model: type[Model], where: str, order_by: tuple[str, ...]) -> str:
    order = ", ".join(f'"{model._meta.get_field(name).column}"' for name in order_by)  # type: ignore[union-attr]
    sql = f"SELECT {columns(model)} FROM {model._meta.db_table} WHERE {where}"  # noqa: S608 - constant SQL
    return sql + (f" ORDER BY {order}" if order else "")


def fetch(
    model: type[M], where: str, params: Sequence[Any], *, order_by: Sequence[str] = ()
) -> list[M]:
    """The rows of ``model`` satisfying ``where`` (constant SQL over its columns, with ``%s``
    for ``params``), in ``order_by``'s order (field names), as model instances."""
    with connection.cursor() as cursor:
        cursor.execute(_statement(model, where, tuple(order_by)), params)
        return [build(model, row) for row in cursor.fetchall()]


def fetch_together(
    *queries: tuple[type[Model], str, Sequence[Any], Sequence[str]],
) -> list[list[Any]]:
    """Several ``fetch``es, each (model, where, params, order_by), in one round trip."""
    with together():
        cursors = [connection.cursor() for _query in queries]
        try:
            for cursor, (model, where, params, order) in zip(cursors, queries, strict=True):
                cursor.execute(_statement(model, where, tuple(order)), params)
            return [
                [build(query[0], row) for row in cursor.fetchall()]
                for cursor, query in zip(cursors, queries, strict=True)
            ]
        finally:
            for cursor in cursors:
                cursor.close()


@functools.cache
def _insert_statement(
    model: type[Model],
) -> tuple[str, list[Field[Any, Any]], list[Field[Any, Any]]]:
    meta = model._meta
    returning = list(meta.db_returning_fields)
    fields = [f for f in meta.concrete_fields if f not in returning]
    columns = ", ".join(f'"{f.column}"' for f in fields)
    values = ", ".join(["%s"] * len(fields))
    back = ", ".join(f'"{f.column}"' for f in returning)
    sql = f"INSERT INTO {meta.db_table} ({columns}) VALUES ({values}) RETURNING {back}"  # noqa: S608 - constant SQL
    return sql, fields, returning


def insert(instance: M, *, wait: bool = True) -> M:
    """INSERT a new instance as ``save()`` would (for a model without a custom ``save`` or
    signal receivers); returns it, saved, with its id. ``wait=False`` inside ``together()``:
    the row is only sent, with the block's next statements, and the instance gets no id."""
    sql, fields, returning = _insert_statement(type(instance))
    params = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if not wait:
            return instance
        row = cursor.fetchone() or ()
    for field, value in zip(returning, row, strict=True):
        setattr(instance, field.attname, value)
    instance._state.adding = False
    instance._state.db = DEFAULT_DB_ALIAS
    return instance


@contextlib.contextmanager
def together() -> Iterator[None]:
    """The block's statements travel together (psycopg's pipeline mode): each is queued, and
    the queue goes to the server when a result is first read or the block ends, so statements
    whose results nobody waits for cost no round trip of their own. They run in order, in the
    caller's transaction; an error surfaces where a result is read or at the block's end, as
    Django's. Only for statements whose failure fails the whole transaction."""
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.pipeline():
        yield
