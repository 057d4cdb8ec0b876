"""House rules that hold for the whole tree (ARCHITECTURE §7): import direction between the apps
and between the market's domains, private names kept inside their package, the provider agent free
of Django, only the ledger writing its tables, modules of a readable size, migrations in step with
the models; and in the suite itself, tests sharing only through tests/fixtures/ and factories."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.fixtures import ROOT

MARKETPLACE = ROOT / "marketplace"
TESTS = ROOT / "tests"
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


def _modules_named(path: Path) -> set[str]:
    """Every module an import in ``path`` may name: ``from a.b import c`` names ``a.b`` and
    ``a.b.c`` (c may be a submodule); relative imports resolved against the module's package."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            named |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            named |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return named


def _fixtures_defined(path: Path) -> list[str]:
    """The fixtures a module defines: functions decorated ``@pytest.fixture`` (or ``@fixture``),
    with or without arguments, under their ``name=`` if they give one."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for decorator in node.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            if ast.unparse(call.func if call else decorator) not in {"pytest.fixture", "fixture"}:
                continue
            given = [k.value for k in (call.keywords if call else []) if k.arg == "name"]
            named = given and isinstance(given[0], ast.Constant) and given[0].value
            names.append(named if isinstance(named, str) else node.name)
    return names


def _plugins(conftest: Path) -> list[str]:
    for node in ast.parse(conftest.read_text()).body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "pytest_plugins":
            plugins: list[str] = ast.literal_eval(node.value)
            return plugins
    return []


def test_tests_share_only_through_fixtures_and_factories() -> None:
    """A test module never imports another test module (nor a conftest): what tests share lives
    in tests/fixtures/ (fixtures as pytest plugins, loaded by tests/conftest.py, and helpers) and
    tests/factories.py. A fixture is defined once in the suite, so none silently overrides
    another: two tests asking for ``market`` get the same market."""
    sources = _sources(TESTS)
    loaded_by_pytest = {
        _module(path)
        for path in sources
        if path.name.startswith("test_") or path.name == "conftest.py"
    }
    imports = {
        str(path.relative_to(ROOT)): sorted(_modules_named(path) & loaded_by_pytest)
        for path in sources
    }
    defined: dict[str, list[str]] = defaultdict(list)
    for path in sources:
        for name in _fixtures_defined(path):
            defined[name].append(str(path.relative_to(ROOT)))
    with_fixtures = {_module(p) for p in _sources(TESTS / "fixtures") if _fixtures_defined(p)}

    assert {path: modules for path, modules in imports.items() if modules} == {}
    assert {name: paths for name, paths in defined.items() if len(paths) > 1} == {}
    assert sorted(_plugins(TESTS / "conftest.py")) == sorted(with_fixtures)
    # the checks above would pass vacuously on a suite they cannot read
    assert {"market", "lease", "books", "committed_db", "buyer"} <= defined.keys()
    assert len(loaded_by_pytest) > 30
    assert "tests.factories.UserFactory" in _modules_named(TESTS / "conftest.py")


@pytest.mark.django_db
def test_migrations_match_the_models() -> None:
    out = StringIO()

    call_command("makemigrations", "--check", "--dry-run", stdout=out)

    assert "No changes detected" in out.getvalue()
