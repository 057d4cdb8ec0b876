"""Settings come from the environment; production refuses to start with a value missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from marketplace.core.env import Env, database_from_url, read_env_file
from tests.fixtures.processes import PRODUCTION_ENV, manage


def test_env_helpers_parse_types_and_defaults(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    env = Env(
        {
            "FLAG": "yes",
            "COUNT": "7",
            "HOSTS": "a.example, b.example,",
            "TOKEN_FILE": str(secret_file),
        }
    )

    assert env.boolean("FLAG", False) is True
    assert env.boolean("MISSING", True) is True
    assert env.integer("COUNT", 1) == 7
    assert env.strings("HOSTS", []) == ["a.example", "b.example"]
    assert env.string("TOKEN", "default") == "from-a-file"
    assert env.string("ABSENT", "default", required=True) == "default"  # not production


def test_env_helpers_reject_malformed_values() -> None:
    env = Env({"FLAG": "maybe", "COUNT": "seven"})

    with pytest.raises(ImproperlyConfigured, match="FLAG must be a boolean"):
        env.boolean("FLAG", False)
    with pytest.raises(ImproperlyConfigured, match="COUNT must be an integer"):
        env.integer("COUNT", 1)


def test_required_value_missing_in_production_names_it() -> None:
    env = Env({"DJANGO_ENV": "production"})

    with pytest.raises(ImproperlyConfigured, match=r"^SECRET_KEY must be set"):
        env.string("SECRET_KEY", "dev", required=True)


@pytest.mark.parametrize(
    "missing",
    [
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "ALLOWED_HOSTS",
        "EMAIL_HOST",
        "LEDGER_SIGNING_KEY",
        "LEASE_ACCESS_KEY",
    ],
)
def test_production_settings_refuse_to_load_without(missing: str) -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}

    result = manage(env, "check")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{missing} must be set when DJANGO_ENV=production" in result.stderr


def test_check_deploy_passes_under_production_settings() -> None:
    result = manage(PRODUCTION_ENV, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_database_url_forms() -> None:
    tcp = database_from_url("postgresql://app:p%40ss@db.example:6543/suanli?sslmode=require")
    socket = database_from_url("postgresql://postgres:@/suanli?host=/run/pg")

    assert (tcp["USER"], tcp["PASSWORD"], tcp["HOST"], tcp["PORT"], tcp["NAME"]) == (
        "app",
        "p@ss",
        "db.example",
        "6543",
        "suanli",
    )
    assert tcp["OPTIONS"] == {"sslmode": "require"}
    assert (socket["HOST"], socket["NAME"], socket["OPTIONS"]) == ("/run/pg", "suanli", {})
    with pytest.raises(ImproperlyConfigured, match="postgresql://"):
        database_from_url("sqlite:///db.sqlite3")


def test_run_env_file_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "run.env"
    path.write_text("DATABASE_URL=postgresql://x@/y?host=/s\nREDIS_URL=redis://127.0.0.1:1/0\n")

    assert read_env_file(path) == {
        "DATABASE_URL": "postgresql://x@/y?host=/s",
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    assert read_env_file(tmp_path / "absent") == {}


@pytest.mark.parametrize(
    ("value", "options"),
    [
        ("", "{'server_side_binding': True, 'prepare_threshold': 2}"),
        ("false", "{}"),
    ],
)
def test_prepared_statements_are_on_unless_turned_off(value: str, options: str) -> None:
    env = {**PRODUCTION_ENV, "DB_PREPARED_STATEMENTS": value} if value else PRODUCTION_ENV
    code = "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS'])"

    result = manage(env, "shell", "--no-imports", "-c", code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == options


def test_the_connection_prepares_a_statement_on_its_second_run(db: None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for _ in range(3):
            cursor.execute("SELECT count(*) FROM marketplace_market WHERE slug = %s", ["cny"])
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        (prepared,) = cursor.fetchone() or (0,)

    assert prepared >= 1
