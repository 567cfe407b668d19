# Custos: `make run` for the console with demo data, `make test` for the suite. The logic is in scripts/.
VENV ?= .venv
PORT ?= 8000
PYTEST_ARGS ?=
MODULES ?=
export VENV PORT PYTEST_ARGS

.DEFAULT_GOAL := help
.PHONY: help run test lint mutation clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z]+:.*## / {printf "  make %-6s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Variables: PORT=$(PORT) (run), PYTEST_ARGS (test), VENV=$(VENV), PYTHON (interpreter to use)"

run: ## Console at http://127.0.0.1:8000 (PORT=...) with demo data, a Celery worker and beat; Ctrl-C stops all
	@scripts/run

test: ## The whole suite against real PostgreSQL and Redis (started here if none is around)
	@scripts/test

lint: ## ruff check, ruff format --check, mypy, makemigrations --check
	@scripts/lint

mutation: ## mutmut over the security core (slow; not in test or CI); MODULES=audit/verify.py for one
	@scripts/mutation $(MODULES)

clean: ## Remove var/ (local database, broker, logs) and the venv's install stamps
	rm -rf var
	rm -f $(VENV)/.custos-*.stamp
