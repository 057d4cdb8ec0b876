"""House rules that hold for the whole tree (ARCHITECTURE §7): import direction between the apps
and between the market's domains, private names kept inside their package, the provider agent free
of Django, only the ledger writing its tables, modules of a readable size, migrations in step with
the models."""

from __future__ import annotations

import ast
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent
MARKETPLACE = ROOT / "marketplace"
# ledger <- marketplace <- matching: each app may import only what is to its left.
FORBIDDEN = {"ledger": {"marketplace", "matching"}, "marketplace": {"matching"}}
DOMAINS = {"accounts", "trading", "leases", "notifications", "payments", "oversight", "vouchers"}
MAX_LINES = 600


def _sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "migrations" not in p.parts)


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imported(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) for every absolute import; name is None for ``import x``."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module, alias.name) for alias in node.names]
    return found


def _package(module: str) -> str:
    """The package a module belongs to, for the private-name rule: ``marketplace.trading`` for
    anything inside it, the module's parent elsewhere."""
    parts = module.split(".")
    if parts[0] == "marketplace" and len(parts) > 2 and parts[1] != "models":
        return ".".join(parts[:2])
    return ".".join(parts[:-1])


@pytest.mark.parametrize("app", sorted(FORBIDDEN))
def test_dependencies_point_one_way(app: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            {m.split(".")[0] for m, _ in _imported(path)} & FORBIDDEN[app]
        )
        for path in (ROOT / app).rglob("*.py")
        if {m.split(".")[0] for m, _ in _imported(path)} & FORBIDDEN[app]
    }
    # marketplace's settings and URLs wire matching in; that is the one allowed exception.
    offenders.pop("marketplace/settings.py", None)
    offenders.pop("marketplace/urls.py", None)

    assert offenders == {}


def test_core_imports_no_domain() -> None:
    offenders = {
        str(path.relative_to(ROOT)): module
        for path in _sources(MARKETPLACE / "core")
        for module, _ in _imported(path)
        if module.split(".")[:2][-1] in DOMAINS and module.startswith("marketplace.")
    }

    assert offenders == {}


def test_no_private_name_is_imported_across_packages() -> None:
    offenders = []
    for path in [*_sources(MARKETPLACE), *_sources(ROOT / "matching"), *_sources(ROOT / "ledger")]:
        here = _package(_module(path))
        for module, name in _imported(path):
            if name is None or not name.startswith("_") or name.startswith("__"):
                continue
            if not module.startswith(("marketplace", "matching", "ledger")):
                continue
            if _package(module) != here:
                offenders.append(f"{path.relative_to(ROOT)}: {module}.{name}")

    assert offenders == []


def test_the_provider_agent_needs_no_django() -> None:
    imported = {
        module.split(".")[0]
        for path in _sources(MARKETPLACE / "client")
        for module, _ in _imported(path)
    }

    assert imported & {"django", "rest_framework", "marketplace", "ledger", "matching"} == set()


LEDGER_WRITE = re.compile(r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM|COPY|TRUNCATE)\s+ledger_", re.I)


def test_only_the_ledger_writes_its_tables() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("marketplace", "matching", "benchmarks")
        for path in _sources(ROOT / folder)
        if LEDGER_WRITE.search(path.read_text())
    ]

    assert offenders == []


def test_no_module_in_the_market_is_too_long_to_read() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in _sources(MARKETPLACE)
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }

    assert long == {}


def test_the_rules_see_the_domains() -> None:
    """The checks above would pass vacuously on a tree they cannot find."""
    packages = {p.name for p in MARKETPLACE.iterdir() if (p / "__init__.py").exists()}

    assert packages >= {"core", "accounts", "trading", "leases", "notifications", "api", "portal"}
    assert _package("marketplace.trading.orders") == "marketplace.trading"
    assert len(_imported(MARKETPLACE / "urls.py")) > 3


@pytest.mark.django_db
def test_migrations_match_the_models() -> None:
    out = StringIO()

    call_command("makemigrations", "--check", "--dry-run", stdout=out)

    assert "No changes detected" in out.getvalue()
