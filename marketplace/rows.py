"""Model instances from one constant statement, for the few reads on every order request.

The ORM compiles a queryset's SQL on every evaluation, which on the order path costs several
times the statement itself. ``fetch`` keeps one statement per (model, condition, ordering) and
builds instances as the ORM's model iterable does: each column through its field's and the
backend's database converters, then ``Model.from_db``. ``tests/test_rows.py`` compares the
result with the ORM's, field by field and type by type.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Model

M = TypeVar("M", bound=Model)
Converters = list[tuple[int, list[Callable[..., Any]], Any]]


@functools.cache
def _statement(
    model: type[Model], where: str, order_by: tuple[str, ...]
) -> tuple[str, list[str], Converters]:
    fields = model._meta.concrete_fields
    columns = ", ".join(f'"{f.column}"' for f in fields)
    order = ", ".join(f'"{model._meta.get_field(name).column}"' for name in order_by)  # type: ignore[union-attr]
    sql = f"SELECT {columns} FROM {model._meta.db_table} WHERE {where}"  # noqa: S608 - constant SQL
    converters: Converters = []
    for n, field in enumerate(fields):
        expression = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(expression) + expression.get_db_converters(
            connection
        )
        if found:
            converters.append((n, found, expression))
    return sql + (f" ORDER BY {order}" if order else ""), [f.attname for f in fields], converters


def fetch(
    model: type[M], where: str, params: Sequence[Any], *, order_by: Sequence[str] = ()
) -> list[M]:
    """The rows of ``model`` satisfying ``where`` (constant SQL over its columns, with ``%s``
    for ``params``), in ``order_by``'s order (field names), as model instances."""
    sql, attnames, converters = _statement(model, where, tuple(order_by))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    instances = []
    for row in rows:
        if converters:
            values = list(row)
            for n, functions, expression in converters:
                for convert in functions:
                    values[n] = convert(values[n], expression, connection)
            row = tuple(values)
        instances.append(model.from_db(DEFAULT_DB_ALIAS, attnames, row))
    return instances
