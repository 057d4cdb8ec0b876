# Suanli Exchange — the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp

.PHONY: install run test lint bench messages clean-var

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-install whenever pyproject.toml changes, so `make test` always runs on what it declares.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --editable '.[dev]'
	touch $(STAMP)

# Front-end libraries (package.json) from the npm registry, again whenever package.json changes.
# .npmrc turns the lock file off, so no file here names a registry host.
$(NODE_STAMP): package.json
	npm install --no-audit --no-fund
	touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

run: $(STAMP) $(NODE_STAMP)
	$(PY) -m marketplace.dev.devstack run

test: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(PY) -W ignore::RuntimeWarning manage.py makemigrations --check --dry-run

bench: $(STAMP)
	$(PY) benchmarks/run.py $(NAME)

messages: $(STAMP)
	$(PY) manage.py makemessages --locale zh_Hans --locale en --ignore '.venv/*' --ignore 'var/*' --ignore 'node_modules/*' --no-obsolete --no-location
	$(PY) manage.py compilemessages --ignore '.venv/*' --ignore 'node_modules/*'

clean-var:
	$(PY) -m marketplace.dev.devstack reset
