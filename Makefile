# OneStop — the two commands of the quick start are `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run cluster test lint typecheck bench drill venv system-packages voice-sdk clean

venv:
	@scripts/ensure-venv.sh

system-packages:
	@scripts/ensure-system-packages.sh

## The Twilio Voice JS SDK for the console's browser phone (npm, into .cache/voice-sdk/).
voice-sdk:
	@scripts/ensure-voice-sdk.sh

## Start the whole service desk on embedded defaults with demo data.
run: venv voice-sdk
	@$(PY) -m onestop run --demo

## The production topology as local processes: PostgreSQL, Redis, two app nodes, a proxy.
cluster: venv system-packages voice-sdk
	@$(PY) -m onestop.localcluster

## The full test suite, with lint, type checks and the import contract.
test: venv system-packages voice-sdk lint typecheck
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
