# Event lakehouse: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PY := .venv/bin/python
LAKE := .venv/bin/lake
export DAGSTER_HOME ?= $(CURDIR)/dagster_home
DATA ?= data
RAW ?= $(DATA)/raw
LAKE_DIR ?= $(DATA)/lake
PYTEST_ARGS ?=

.PHONY: help setup demo dev test bench bench-scale lint clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

setup: ## Install uv if missing, then the locked environment into .venv/ (gives .venv/bin/lake)
	@command -v uv >/dev/null 2>&1 || test -x $(HOME)/.local/bin/uv || python3 -m pip install --user --quiet uv || curl -LsSf https://astral.sh/uv/install.sh | sh
	$(UV) sync --frozen --compile-bytecode
	@echo "ready: .venv/bin/lake --help"

demo: ## Generate an hour of events (plus a redelivery batch), ingest both, print a summary and a query
	rm -rf $(DATA)/demo
	$(LAKE) generate --out $(DATA)/demo/raw --events 100000 --duplicates 0.05 --malformed 0.01 --late 0.02 --seed 7 --start 2025-11-20T13
	$(LAKE) ingest --raw $(DATA)/demo/raw --lake $(DATA)/demo/lake
	$(LAKE) generate --out $(DATA)/demo/raw --events 20000 --redeliver 0.05 --seed 8 --start 2025-11-20T14
	$(LAKE) ingest --raw $(DATA)/demo/raw --lake $(DATA)/demo/lake
	$(LAKE) ingest --raw $(DATA)/demo/raw --lake $(DATA)/demo/lake
	$(LAKE) query --lake $(DATA)/demo/lake "SELECT _batch_id AS batch, sum(records)::BIGINT AS records, sum(inserted)::BIGINT AS inserted, sum(duplicates)::BIGINT AS duplicates, sum(quarantined)::BIGINT AS quarantined FROM ingest_ledger GROUP BY 1 ORDER BY 1"
	$(LAKE) query --lake $(DATA)/demo/lake "SELECT event_type, count(*) AS events, count(DISTINCT json_extract_string(payload, '$$.user_id')) AS users, min(created_datetime) AS first, max(created_datetime) AS last FROM events GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
	$(LAKE) query --lake $(DATA)/demo/lake "SELECT reason, count(*) AS records FROM quarantine GROUP BY 1 ORDER BY 2 DESC"

dev: ## Open the Dagster UI (http://127.0.0.1:3000) on the demo lake; the sensor picks up new files
	LAKE_RAW_URI=$${LAKE_RAW_URI:-$(DATA)/demo/raw} LAKE_URI=$${LAKE_URI:-$(DATA)/demo/lake} \
	  .venv/bin/dagster dev -m lake_pipeline.definitions -h 127.0.0.1 -p $${PORT:-3000}

test: ## Run the test suite (unit, Dagster, CLI end to end, emulated AWS, Terraform static checks)
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: ## Throughput vs the single-SQL DuckDB floor on 1M events (empty lake and 30 days of history), peak RSS
	$(PY) -m lake_pipeline.bench --events 1000000

bench-scale: ## The same on 10M events, to show memory stays bounded by batch size
	$(PY) -m lake_pipeline.bench --events 10000000 --skip-history

lint: ## Validate the Dagster definitions
	$(PY) -m dagster definitions validate -m lake_pipeline.definitions

clean: ## Remove local data and Dagster run storage (keeps dagster.yaml)
	rm -rf $(DATA) .bench
	find dagster_home -mindepth 1 -not -name 'dagster*.yaml' -delete 2>/dev/null || true
