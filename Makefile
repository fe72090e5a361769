# OneStop — the two commands of the quick start are `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint typecheck bench drill venv system-packages clean

venv:
	@scripts/ensure-venv.sh

system-packages:
	@scripts/ensure-system-packages.sh

## Start the whole service desk on embedded defaults with demo data.
run: venv
	@$(PY) -m onestop run --demo

## The full test suite, with lint, type checks and the import contract.
test: venv system-packages lint typecheck
	@$(PY) -m pytest -q -p no:cacheprovider

lint: venv
	@$(VENV)/bin/ruff check .

typecheck: venv
	@$(VENV)/bin/mypy

bench: venv
	@$(PY) -m bench

## Every reliability and security drill, the long ones too, with a report.
drill: venv system-packages
	@$(PY) -m tests.drills

clean:
	rm -rf var .cache .pytest_cache .mypy_cache .ruff_cache
