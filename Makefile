# Event lakehouse: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv installed by `make setup` (pip --user) lands in ~/.local/bin: keep it on PATH for every target.
export PATH := $(HOME)/.local/bin:$(PATH)
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PY := .venv/bin/python
LAKE := .venv/bin/lake
export DAGSTER_HOME ?= $(CURDIR)/dagster_home
DATA ?= data
RAW ?= $(DATA)/raw
LAKE_DIR ?= $(DATA)/lake
PYTEST_ARGS ?=

include terraform/infra.mk

.PHONY: help setup demo dev freshness test test-fast bench bench-scale bench-baseline bench-history serve bench-serve bench-ray lint clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

setup: ## Install uv if missing, then the locked environment into .venv/ (gives .venv/bin/lake)
	@command -v uv >/dev/null 2>&1 || test -x $(HOME)/.local/bin/uv || python3 -m pip install --user --quiet uv || curl -LsSf https://astral.sh/uv/install.sh | sh
	$(UV) sync --frozen --compile-bytecode
	@echo "ready: .venv/bin/lake --help"

demo: ## Generate the hour before last of events (+ a redelivery batch in the last hour), ingest both, build the hourly mart, compact, query
	rm -rf $(DATA)/demo
	$(LAKE) generate --out $(DATA)/demo/raw --events 100000 --duplicates 0.05 --malformed 0.01 --late 0.02 --seed 7 --start -2h
	$(LAKE) ingest --raw $(DATA)/demo/raw --lake $(DATA)/demo/lake
	$(LAKE) generate --out $(DATA)/demo/raw --events 20000 --redeliver 0.05 --seed 8 --start -1h
	$(LAKE) ingest --raw $(DATA)/demo/raw --lake $(DATA)/demo/lake
	$(LAKE) ingest --raw $(DATA)/demo/raw --lake $(DATA)/demo/lake
	$(LAKE) marts --lake $(DATA)/demo/lake
	$(LAKE) compact --lake $(DATA)/demo/lake --no-vacuum
	$(LAKE) query --lake $(DATA)/demo/lake "SELECT _batch_id AS batch, sum(records)::BIGINT AS records, sum(inserted)::BIGINT AS inserted, sum(duplicates)::BIGINT AS duplicates, sum(quarantined)::BIGINT AS quarantined FROM ingest_ledger GROUP BY 1 ORDER BY 1"
	$(LAKE) query --lake $(DATA)/demo/lake "SELECT event_type, count(*) AS events, count(DISTINCT json_extract_string(payload, '$$.user_id')) AS users, min(created_datetime) AS first, max(created_datetime) AS last FROM events GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
	$(LAKE) query --lake $(DATA)/demo/lake "SELECT reason, count(*) AS records FROM quarantine GROUP BY 1 ORDER BY 2 DESC"
	$(LAKE) query --lake $(DATA)/demo/lake "SELECT event_hour, sum(events)::BIGINT AS events, max(unique_users) AS max_users_per_name FROM hourly_event_counts WHERE event_hour >= (SELECT max(event_hour) FROM hourly_event_counts) - INTERVAL 1 HOUR GROUP BY 1 ORDER BY 1"

dev: ## Open the Dagster UI (http://127.0.0.1:3000) on the demo lake; the sensor picks up new files; Ctrl-C stops it
	@raw=$${LAKE_RAW_URI:-$(DATA)/demo/raw}; case "$$raw" in s3://*) ;; *) mkdir -p "$$raw" ;; esac; \
	  echo "dagster dev on http://127.0.0.1:$${PORT:-3000}: landing zone $$raw, lake $${LAKE_URI:-$(DATA)/demo/lake}"; \
	  LAKE_RAW_URI=$$raw LAKE_URI=$${LAKE_URI:-$(DATA)/demo/lake} \
	  exec $(PY) -m lake_pipeline.devtools.dev -h 127.0.0.1 -p $${PORT:-3000}

freshness: ## Landing -> queryable in a running `make dev` (same DATA and PORT): drops small objects one at a time, prints p50/p95/max
	$(PY) -m lake_pipeline.devtools.freshness --raw $${LAKE_RAW_URI:-$(DATA)/demo/raw} --lake $${LAKE_URI:-$(DATA)/demo/lake} \
	  --url http://127.0.0.1:$${PORT:-3000} $(FRESHNESS_ARGS)

test: ## Run the test suite (unit, Dagster, CLI end to end, emulated AWS, Terraform static checks)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: ## The fast tier (under 60 s): all but the e2e (subprocesses, moto server), terraform (fmt, checkov), property (hypothesis) and heavy (1.5 s or more each) tests
	$(PY) -m pytest -q -m "not e2e and not terraform and not property and not heavy" $(PYTEST_ARGS)

bench: ## Throughput vs the single-SQL DuckDB floor: 1M synthetic events (empty lake, 30 days of history, 1% malformed) and production-shaped corpora (realistic payloads, newline-delimited clean and dirty, one 128 MiB object), peak RSS (ROUNDS=3: medians of 3 rounds)
	$(PY) -m lake_pipeline.devtools.bench --events 1000000 $(if $(ROUNDS),--rounds $(ROUNDS))

bench-scale: ## The same on 10M events, to show memory stays bounded by batch size
	$(PY) -m lake_pipeline.devtools.bench --events 10000000 --skip-history --corpora synthetic

bench-baseline: ## make bench, plus `lake ingest` from another checkout on the same files (BASE=its root; ON=corpora, default all; ROUNDS=)
	@test -n "$(BASE)" || { echo "usage: make bench-baseline BASE=../wt-base (a checkout of the code to compare with)" >&2; exit 2; }
	$(PY) -m lake_pipeline.devtools.bench --events 1000000 --baseline $(abspath $(BASE)) $(if $(ON),--baseline-corpora $(ON)) $(if $(ROUNDS),--rounds $(ROUNDS))

bench-history: ## One one-minute batch (17k events, 2% late, 300 redeliveries) into an empty lake and lakes of 3 days x 1M/4M/9M/16M events (the last hour fed as 60 one-minute batches), in-process and as a whole `lake ingest` (3 processes each, median, each beside one into an empty lake; RUNS=), the mart's rebuild vs update (SIZES=, DAYS= to shrink)
	nice -n 10 $(PY) -m lake_pipeline.devtools.bench_history $(if $(SIZES),--sizes $(SIZES)) $(if $(DAYS),--days $(DAYS)) $(if $(RUNS),--process-runs $(RUNS)) $(BENCH_HISTORY_ARGS)

serve: ## lake serve on http://127.0.0.1:8000 (PORT=...) over the demo lake (GET/POST /analytics, /users/{id}/events, /docs); POSTs land in its raw zone
	$(LAKE) serve --lake $${LAKE_URI:-$(DATA)/demo/lake} --raw $${LAKE_RAW_URI:-$(DATA)/demo/raw} --spool $(DATA)/demo/spool --port $${PORT:-8000}

bench-serve: ## lake serve under load (asyncio keep-alive clients, 32 connections): GET current/past hour, GET users, POST; freshness; POSTs exactly once after ingest
	nice -n 10 $(PY) -m lake_pipeline.devtools.bench_serve $(BENCH_SERVE_ARGS)

bench-ray: ## The Ray engine against the local engine on the same 1M and 10M events, in one run: wall and CPU seconds, ray/local ratio, seconds per stage (BENCH_EVENTS=1000000 for one size)
	nice -n 10 $(PY) -m lake_pipeline.devtools.bench_ray --events $(or $(BENCH_EVENTS),1000000 10000000)

lint: ## Validate the Dagster definitions
	$(PY) -m dagster definitions validate

clean: ## Remove local data and Dagster run storage (keeps dagster.yaml)
	rm -rf $(DATA) .bench
	find dagster_home -mindepth 1 -not -name 'dagster*.yaml' -delete 2>/dev/null || true

# ---- AWS loop (emulated) ---------------------------------------------------------------
# A moto server on 127.0.0.1 plays S3, Kinesis and Firehose over real HTTP (docs/aws-local.md).
# State (pidfile, log, endpoint, env file, the loop's Dagster instance) lives in .aws-local/.
AWS_LOCAL ?= .aws-local
EVENTS ?= 10000
RATE ?=
TARGET ?= firehose
# Recipes below run in the emulator's environment (AWS_ENDPOINT_URL, test credentials, LAKE_*_URI, DAGSTER_HOME).
AWS_LOCAL_ENV = test -f $(AWS_LOCAL)/env || { echo "error: no emulator running: make aws-local" >&2; exit 2; }; . $(AWS_LOCAL)/env;

.PHONY: aws-local aws-local-stop bootstrap produce dev-aws

aws-local: ## Start a moto server (S3, Kinesis, Firehose) on 127.0.0.1 in the background; prints the export line
	@$(LAKE) emulator start --state-dir $(AWS_LOCAL)

aws-local-stop: ## Stop the moto server started by aws-local (it forgets its buckets and streams)
	@$(LAKE) emulator stop --state-dir $(AWS_LOCAL)

bootstrap: ## On the emulator: create the raw and lake buckets, the Kinesis stream and the Firehose delivery stream
	@$(AWS_LOCAL_ENV) $(LAKE) bootstrap

produce: ## Send EVENTS synthetic events (RATE per second, TARGET firehose|kinesis) to the emulator
	@$(AWS_LOCAL_ENV) $(LAKE) produce --events $(EVENTS) --target $(TARGET) $(if $(RATE),--rate $(RATE))

dev-aws: ## Dagster UI (http://127.0.0.1:3000) against the emulator; the sensor ingests what produce delivers
	@$(AWS_LOCAL_ENV) exec $(PY) -m lake_pipeline.devtools.dev -h 127.0.0.1 -p $${PORT:-3000}
# ---- end of AWS loop ---------------------------------------------------------------------
