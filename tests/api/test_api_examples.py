"""Every example in the served OpenAPI schema is valid against the schema it illustrates.

For each operation of ``/api/schema/`` (fetched once through the test client, exactly as it is
served), every response example is validated against that operation's response schema for its
status code and media type, and every request example against the request body schema.
``$ref`` components resolve against the same document. The schema is OpenAPI 3.0, which is
JSON Schema draft 4 plus a few differences, so it is translated before validating:
``nullable: true`` becomes "or null", the siblings of a ``$ref`` are ignored (as OpenAPI 3.0
says), ``readOnly``/``writeOnly`` are annotations, and ``additionalProperties`` is kept as the
schema states it (absent means allowed). The formats the schema uses (``date-time``, ``uuid``,
``uri``, ``email``, ``decimal``) are checked too. A failure names the operation, the status
(or ``request``), the JSON path in the example and the validator's message. The last tests
prove the checker rejects a deliberately broken copy of an example.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from django.test import Client
from jsonschema import Draft4Validator, FormatChecker  # type: ignore[import-untyped]
from jsonschema.exceptions import best_match  # type: ignore[import-untyped]

from marketplace.api.schema import all_examples, examples_by_domain
from marketplace.trading.examples import FILLED_ORDER, ORDER, ORDER_IN

Json = dict[str, Any]

# Keywords whose value is one schema, a list of schemas, or a name → schema map (OpenAPI 3.0).
_ONE_SCHEMA = ("items", "not", "additionalProperties")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# --------------------------------------------------------------------------- the schema


@functools.cache
def served_schema() -> Json:
    """``GET /api/schema/?format=json``, as a client sees it (cached: served once per run)."""
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content[:500]
    schema: Json = json.loads(response.content)
    return schema


def operations() -> dict[str, Json]:
    """operationId → operation object, for every path and method of the served schema."""
    return {
        operation["operationId"]: operation
        for path_item in served_schema()["paths"].values()
        for method, operation in path_item.items()
        if method in {"get", "put", "post", "patch", "delete", "head", "options", "trace"}
    }


# ------------------------------------------------------------------- OpenAPI 3.0 → JSON Schema


def to_json_schema(schema: Any) -> Any:
    """An OpenAPI 3.0 schema object as JSON Schema draft 4 (a new object; the input is kept).

    ``nullable: true`` becomes ``anyOf: [<the schema>, {"type": "null"}]`` (so it also works
    next to ``allOf``/``enum``, where adding "null" to ``type`` would not); a ``$ref`` drops its
    siblings, as OpenAPI 3.0 ignores them; every nested schema is translated the same way.
    Other keywords (``readOnly``, ``writeOnly``, ``format``, ``additionalProperties`` …) are
    draft 4 keywords or annotations and pass through unchanged."""
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return {"$ref": schema["$ref"]}
    converted = {key: value for key, value in schema.items() if key != "nullable"}
    for key in _ONE_SCHEMA:
        if isinstance(converted.get(key), dict):
            converted[key] = to_json_schema(converted[key])
    for key in _SCHEMA_LISTS:
        if key in converted:
            converted[key] = [to_json_schema(item) for item in converted[key]]
    if "properties" in converted:
        converted["properties"] = {
            name: to_json_schema(item) for name, item in converted["properties"].items()
        }
    if schema.get("nullable") is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        raise ValueError("not an RFC 3339 date-time")
    dt.datetime.fromisoformat(value.upper())  # the calendar: no 2026-02-30
    return True


def _is_uuid(value: object) -> bool:
    if isinstance(value, str):
        if not _UUID.match(value):
            raise ValueError("not a hyphenated UUID")
        uuid.UUID(value)
    return True


def _is_decimal(value: object) -> bool:
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation as error:
            raise ValueError("not a decimal number") from error
        if not number.is_finite():
            raise ValueError("not a finite decimal number")
    return True


def _matches(pattern: re.Pattern[str], what: str) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        if isinstance(value, str) and not pattern.match(value):
            raise ValueError(f"not {what}")
        return True

    return check


FORMAT_CHECKER = FormatChecker(formats=())
FORMAT_CHECKER.checks("date-time", raises=ValueError)(_is_date_time)
FORMAT_CHECKER.checks("uuid", raises=ValueError)(_is_uuid)
FORMAT_CHECKER.checks("decimal", raises=ValueError)(_is_decimal)
FORMAT_CHECKER.checks("uri", raises=ValueError)(_matches(_URI, "a URI"))
FORMAT_CHECKER.checks("email", raises=ValueError)(_matches(_EMAIL, "an email address"))


@functools.cache
def _components() -> Json:
    """The served schema's components, translated once."""
    components = served_schema().get("components", {})
    return {
        **components,
        "schemas": {
            name: to_json_schema(schema) for name, schema in components.get("schemas", {}).items()
        },
    }


def _explain(error: Any) -> tuple[str, str]:
    """(JSON path, message) of the most specific reason behind a validation error: for an
    ``anyOf``/``oneOf`` (a nullable value, say) the branch that came closest, not "is not valid
    under any of the given schemas"."""
    while error.context:
        branches = [
            sub
            for sub in error.context
            if not (sub.validator == "type" and sub.validator_value == "null")
        ]
        error = best_match(branches or error.context)
    return str(error.json_path), str(error.message)


def schema_errors(value: Any, schema: Json) -> list[tuple[str, str]]:
    """(JSON path, message) for each way ``value`` breaks the OpenAPI 3.0 ``schema`` (whose
    ``$ref``s point into the served schema's components), in path order; empty when valid."""
    document = {"allOf": [to_json_schema(schema)], "components": _components()}
    validator = Draft4Validator(document, format_checker=FORMAT_CHECKER)
    errors = [_explain(error) for error in validator.iter_errors(value)]
    return sorted(set(errors))


# --------------------------------------------------------------------------- the examples


def _shorten(message: str, limit: int = 300) -> str:
    """A message quotes the offending value; a whole response body would bury the reason."""
    return message if len(message) <= limit else f"{message[: limit - 120]} … {message[-100:]}"


@dataclass(frozen=True)
class Example:
    operation_id: str
    status: str  # the response status code, or "request" for the request body
    media_type: str
    name: str
    value: Any
    schema: Json

    def errors(self) -> list[str]:
        return [
            f"{self.operation_id} {self.status} {self.media_type} example {self.name!r} "
            f"at {path}: {_shorten(message)}"
            for path, message in schema_errors(self.value, self.schema)
        ]


def _resolve(node: Json) -> Json:
    """Follow a local ``$ref`` (``#/components/examples/…``) to the object it names."""
    while "$ref" in node:
        target: Any = served_schema()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _media_examples(operation_id: str, status: str, content: dict[str, Json]) -> Iterator[Example]:
    for media_type, media in content.items():
        named = {name: _resolve(example) for name, example in media.get("examples", {}).items()}
        values = {name: example["value"] for name, example in named.items()}
        if "example" in media:
            values["example (singular)"] = media["example"]
        for name, value in values.items():
            yield Example(operation_id, status, media_type, name, value, media.get("schema", {}))


def examples_of(operation_id: str) -> list[Example]:
    """Every request and response example the served schema gives the operation."""
    operation = operations()[operation_id]
    found: list[Example] = []
    body = _resolve(operation.get("requestBody", {}))
    found += _media_examples(operation_id, "request", body.get("content", {}))
    for status, response in operation.get("responses", {}).items():
        found += _media_examples(operation_id, status, _resolve(response).get("content", {}))
    return found


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("operation_id", sorted(operations()))
def test_examples_match_the_schema(operation_id: str) -> None:
    examples = examples_of(operation_id)
    assert any(example.status != "request" for example in examples), "no response example"

    failures = [failure for example in examples for failure in example.errors()]

    assert not failures, "\n".join(failures)


def test_every_example_belongs_to_an_operation() -> None:
    """An example keyed by an operationId the schema no longer has would be silently dropped."""
    examples = all_examples()
    assert set(examples) <= set(operations()), set(examples) - set(operations())


def test_no_operation_has_examples_in_two_domains() -> None:
    """Merging the domains' examples would silently keep only one of two for an operation."""
    domains: dict[str, list[str]] = {}
    for domain, examples in examples_by_domain().items():
        for operation_id in examples:
            domains.setdefault(operation_id, []).append(domain)

    assert {op: found for op, found in domains.items() if len(found) > 1} == {}
    assert len(domains) >= len(operations())  # every domain's examples were seen


def test_all_examples_are_validated() -> None:
    examples = [example for operation_id in operations() for example in examples_of(operation_id)]

    responses = [example for example in examples if example.status != "request"]
    assert len(responses) >= len(operations())
    assert len(examples) > len(responses)  # request examples too


def _response_schema(operation_id: str, status: str) -> Json:
    schema: Json = operations()[operation_id]["responses"][status]["content"]["application/json"][
        "schema"
    ]
    return schema


def _request_schema(operation_id: str) -> Json:
    schema: Json = operations()[operation_id]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    return schema


def test_the_untouched_examples_are_valid() -> None:
    assert schema_errors(ORDER, _response_schema("orders_create", "201")) == []
    assert schema_errors(FILLED_ORDER, _response_schema("orders_retrieve", "200")) == []
    assert schema_errors(ORDER_IN, _request_schema("orders_create")) == []


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ({"last_round": "29924640"}, "$.last_round", "'29924640' is not of type 'integer'"),
        ({"id": None}, "$.id", "None is not of type 'string'"),
        ({"id": "order-1"}, "$.id", "'order-1' is not a 'uuid'"),
        ({"created_at": "24/11/2026 00:00"}, "$.created_at", "is not a 'date-time'"),
        ({"limit_price": "18.5000001"}, "$.limit_price", "does not match"),
        ({"status": "pending"}, "$.status", "'pending' is not one of"),
        ({"device_models": "nvidia-h100-sxm"}, "$.device_models", "is not of type 'array'"),
        ({"min_memory_gb": 80}, "$.min_memory_gb", "80 is not of type 'string'"),
    ],
)
def test_a_broken_response_example_is_rejected(change: Json, path: str, message: str) -> None:
    broken = {**copy.deepcopy(ORDER), **change}

    errors = schema_errors(broken, _response_schema("orders_create", "201"))

    assert any(at == path and message in text for at, text in errors), errors


def test_a_response_example_missing_a_required_field_is_rejected() -> None:
    broken = {key: value for key, value in ORDER.items() if key != "quantity"}

    errors = schema_errors(broken, _response_schema("orders_create", "201"))

    assert errors == [("$", "'quantity' is a required property")]


def test_a_nested_error_is_reported_at_its_path() -> None:
    broken: Any = copy.deepcopy(FILLED_ORDER)
    broken["leases"][0]["cost"]["amount_minor"] = "1632000"
    del broken["leases"][0]["buyer_fee"]["currency"]

    errors = schema_errors(broken, _response_schema("orders_retrieve", "200"))

    assert errors == [
        ("$.leases[0].buyer_fee", "'currency' is a required property"),
        ("$.leases[0].cost.amount_minor", "'1632000' is not of type 'integer'"),
    ]


def test_a_broken_request_example_is_rejected() -> None:
    broken = {**ORDER_IN, "duration_hours": "24"}
    del broken["market"]

    errors = schema_errors(broken, _request_schema("orders_create"))

    assert ("$", "'market' is a required property") in errors
    assert ("$.duration_hours", "'24' is not of type 'integer'") in errors


def test_nullable_means_null_is_allowed_and_nothing_else_is() -> None:
    nullable = {"type": "integer", "nullable": True}

    assert schema_errors(None, nullable) == []
    assert schema_errors(7, nullable) == []
    assert schema_errors("7", nullable) == [("$", "'7' is not of type 'integer'")]
    assert schema_errors(None, {"type": "integer"}) == [("$", "None is not of type 'integer'")]
    assert schema_errors(None, {"allOf": [{"type": "string"}], "nullable": True}) == []
