"""The OpenAPI schema's examples: the drf-spectacular postprocessing hook ``add_examples`` (named
in ``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]``), which puts each operation's request and
response examples into the schema, and ``page()``, the paginated envelope the domains' examples
use. The examples themselves live with their views, in ``marketplace.<domain>.examples``, each an
``EXAMPLES`` dict keyed by operationId (so views stay short).

The domains' example modules import ``page`` from here, so this module imports them only when
the examples are asked for (``examples_by_domain``), never at import time.
"""

from __future__ import annotations

from typing import Any

# operationId → (request example or None, response example)
Examples = dict[str, tuple[dict[str, Any] | None, Any]]


def page(*items: dict[str, Any]) -> dict[str, Any]:
    return {"data": list(items), "next": None, "previous": None}


def examples_by_domain() -> dict[str, Examples]:
    """Each domain's ``EXAMPLES``, by domain name."""
    from marketplace.accounts import examples as accounts
    from marketplace.leases import examples as leases
    from marketplace.notifications import examples as notifications
    from marketplace.trading import examples as trading

    return {
        "accounts": accounts.EXAMPLES,
        "trading": trading.EXAMPLES,
        "leases": leases.EXAMPLES,
        "notifications": notifications.EXAMPLES,
    }


def all_examples() -> Examples:
    """Every operation's examples: the domains' ``EXAMPLES`` merged (a new dict)."""
    merged: Examples = {}
    for examples in examples_by_domain().values():
        merged.update(examples)
    return merged


def add_examples(result: dict[str, Any], generator: Any, request: Any, public: bool) -> Any:
    """drf-spectacular postprocessing hook: put each operation's examples into the schema."""
    examples = all_examples()
    for path in result.get("paths", {}).values():
        for operation in path.values():
            found = examples.get(operation.get("operationId", ""))
            if found is None:
                continue
            request_example, response_example = found
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if request_example is not None and body is not None and not body.get("examples"):
                body["examples"] = {"example": {"value": request_example}}
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {}).get("application/json")
                if status.startswith("2") and content is not None:
                    content.setdefault("examples", {"example": {"value": response_example}})
    return result
