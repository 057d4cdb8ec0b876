"""House rules that hold for the whole tree: import direction, migrations in step with models."""

from __future__ import annotations

import ast
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent
# ledger <- marketplace <- matching: each app may import only what is to its left.
FORBIDDEN = {"ledger": {"marketplace", "matching"}, "marketplace": {"matching"}}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("app", sorted(FORBIDDEN))
def test_dependencies_point_one_way(app: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & FORBIDDEN[app])
        for path in (ROOT / app).rglob("*.py")
        if _imports(path) & FORBIDDEN[app]
    }
    # marketplace's settings and URLs wire matching in; that is the one allowed exception.
    offenders.pop("marketplace/settings.py", None)
    offenders.pop("marketplace/urls.py", None)

    assert offenders == {}


@pytest.mark.django_db
def test_migrations_match_the_models() -> None:
    out = StringIO()

    call_command("makemigrations", "--check", "--dry-run", stdout=out)

    assert "No changes detected" in out.getvalue()
