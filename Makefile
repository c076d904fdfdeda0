# hubnet's developer loop. `make` alone lists the targets; `make run` and `make test` are the two that matter.
# Everything the targets need is installed by `make install` (idempotent, quick when nothing changed:
# stamp files in .local/stamps); all local state lives in .local/ (git-ignored).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VENV := .venv
PY := $(VENV)/bin/python
HUBNET := $(VENV)/bin/hubnet
PYTEST := $(VENV)/bin/pytest
STAMPS := .local/stamps
KAFKA_POM := deploy/local/kafka/pom.xml
KAFKA_VERSION := $(shell sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' $(KAFKA_POM))
KAFKA_JARS := .local/cache/kafka/$(KAFKA_VERSION)/libs/.complete
TEST_STACK := test
TIERS := unit integration e2e fault
INTEGRATION_COMPONENTS := postgres,kafka,smtp

# `make up/down/status/run` act on the instance HUBNET_STACK names (dev unless set); the test targets use $(TEST_STACK).
export HUBNET_STACK ?= dev
# Python 3.11 comes from the machine; uv must not try to download one.
export UV_PYTHON_DOWNLOADS ?= never

.PHONY: help install fmt lint test test-unit test-integration test-e2e test-fault bench up down run status contracts migration i18n clean ensure-nginx \
	ensure-postgres ensure-java ensure-chromium

help: ## list the targets (default)
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z0-9-]*:.*## / {printf "  %-17s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMPS)/venv $(STAMPS)/npm ensure-postgres ensure-nginx ensure-chromium $(KAFKA_JARS) ## uv, .venv from requirements.lock, npm packages, PostgreSQL, nginx and Chromium (apt), Kafka jars (Maven)

$(STAMPS)/venv: pyproject.toml requirements.lock
	@mkdir -p $(STAMPS)
	@uv="$$(command -v uv || true)"; \
	if [ -z "$$uv" ]; then \
	  echo "installing uv (pip install uv)"; \
	  if ! python3 -m pip --version >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip; \
	  fi; \
	  python3 -m pip install --user --quiet uv 2>/dev/null \
	    || python3 -m pip install --user --quiet --break-system-packages uv; \
	  uv="python3 -m uv"; \
	fi; \
	[ -x $(PY) ] || $$uv venv $(VENV) --python 3.11; \
	$$uv pip sync --python $(PY) requirements.lock; \
	$$uv pip install --python $(PY) --no-deps -e .
	@touch $@

# Debian's package when no server binaries are found. The automatic "main" cluster on port 5432 is
# not wanted: the stack runs its own clusters under .local/.
ensure-postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null \
	    && [ -z "$${HUBNET_PG_BINDIR:-}" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "PostgreSQL server binaries are missing: sudo apt-get install -y postgresql (or set HUBNET_PG_BINDIR)" >&2; \
	    exit 1; \
	  fi; \
	  echo "installing PostgreSQL (apt-get install -y postgresql)"; \
	  mkdir -p /etc/postgresql-common/createcluster.d; \
	  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/hubnet-no-main-cluster.conf; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	fi

# The gateway's nginx (Debian's nginx-light). Its package would start a default server on port 80: a
# policy-rc.d refuses that start (only when none exists, and removed afterwards); the stack runs its own.
ensure-nginx:
	@if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ] && [ -z "$${HUBNET_NGINX_BIN:-}" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "nginx is missing: sudo apt-get install -y nginx-light (or set HUBNET_NGINX_BIN)" >&2; \
	    exit 1; \
	  fi; \
	  echo "installing nginx (apt-get install -y nginx-light)"; \
	  policy=""; \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy=yes; \
	  fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; status=$$?; \
	  [ -z "$$policy" ] || rm -f /usr/sbin/policy-rc.d; \
	  exit $$status; \
	fi

# npm packages from package-lock.json (axe-core for the page tests; the console's htmx): served by hubnet
# itself, never from a CDN.
$(STAMPS)/npm: package.json package-lock.json
	@mkdir -p $(STAMPS)
	@if ! command -v npm >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then echo "npm is missing: sudo apt-get install -y npm" >&2; exit 1; fi; \
	  echo "installing Node.js and npm (apt-get install -y nodejs npm)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; \
	fi
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's Chromium drives the page tests (Playwright with executable_path; no browser download), with
# Japanese fonts so that screenshots show Japanese text.
ensure-chromium:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "noto sans cjk"; then \
	  if [ "$$(id -u)" != 0 ]; then echo "Chromium is missing: sudo apt-get install -y chromium fonts-noto-cjk" >&2; exit 1; fi; \
	  echo "installing Chromium and Japanese fonts (apt-get install -y chromium fonts-noto-cjk)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk; \
	fi

ensure-java:
	@if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then echo "Java 17+ and Maven are missing: sudo apt-get install -y default-jre-headless maven" >&2; exit 1; fi; \
	  echo "installing Java and Maven (apt-get install -y default-jre-headless maven)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless maven; \
	fi

$(KAFKA_JARS): $(KAFKA_POM) | $(STAMPS)/venv ensure-java
	@$(HUBNET) stack prepare
	@touch $@

fmt: $(STAMPS)/venv ## ruff format, then ruff check --fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

lint: $(STAMPS)/venv ## ruff check, ruff format --check, mypy (strict), import contracts (lint-imports)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services shared deploy tests
	$(VENV)/bin/lint-imports

test: install ## start the test stack, run unit → integration → e2e → fault (stop at the first failing tier), stop it
	@export HUBNET_STACK=$(TEST_STACK); \
	trap 'exit 130' INT TERM; \
	trap 'echo "━━ stopping the $(TEST_STACK) stack"; $(HUBNET) stack down || true' EXIT; \
	$(HUBNET) stack up; \
	for tier in $(TIERS); do \
	  echo "━━ tests/$$tier"; \
	  rc=0; $(PYTEST) tests/$$tier || rc=$$?; \
	  if [ $$rc != 0 ]; then \
	    if [ $$rc = 5 ]; then why="no tests collected"; else why="pytest exit $$rc"; fi; \
	    echo "━━ tests/$$tier FAILED ($$why): later tiers not run" >&2; \
	    exit $$rc; \
	  fi; \
	done

# One tier against the test stack, which is started if needed and left running for the next run.
define run_tier
	@HUBNET_STACK=$(TEST_STACK) $(HUBNET) stack up $(2)
	HUBNET_STACK=$(TEST_STACK) $(PYTEST) tests/$(1)
	@echo "(the $(TEST_STACK) stack keeps running: make down HUBNET_STACK=$(TEST_STACK) stops it)"
endef

test-unit: $(STAMPS)/venv ## unit tests only (no stack needed)
	$(PYTEST) tests/unit

test-integration: install ## integration tests on the test stack's PostgreSQL and Kafka (left running)
	$(call run_tier,integration,--only $(INTEGRATION_COMPONENTS))

test-e2e: install ## end-to-end tests on the whole test stack (left running)
	$(call run_tier,e2e)

test-fault: install ## fault tests (Kafka and PostgreSQL outages, SIGKILLed consumers) on the whole test stack (left running)
	$(call run_tier,fault)

# vegeta, the open-loop load generator, built from the Go module proxy into .local/cache.
VEGETA := .local/cache/go/bin/vegeta
VEGETA_VERSION := v12.12.0

bench: install $(VEGETA) ## throughput of intake, the relay and each consumer against raw baselines; intake under open-loop load (test stack)
	@HUBNET_STACK=$(TEST_STACK) $(HUBNET) stack up --only postgres,kafka
	HUBNET_STACK=$(TEST_STACK) $(PY) -m tests.bench.pipeline
	@HUBNET_STACK=$(TEST_STACK) $(HUBNET) stack up
	HUBNET_STACK=$(TEST_STACK) $(PY) -m tests.bench.intake_load
	@echo "(the $(TEST_STACK) stack keeps running: make down HUBNET_STACK=$(TEST_STACK) stops it)"

$(VEGETA):
	@command -v go >/dev/null || { echo "Go is missing (https://go.dev/dl): make bench builds vegeta with it" >&2; exit 1; }
	GOBIN=$(abspath .local/cache/go/bin) GOPATH=$(abspath .local/cache/go/path) GOFLAGS=-modcacherw \
	  go install github.com/tsenart/vegeta/v12@$(VEGETA_VERSION)

up: install ## start the dev stack in the background (HUBNET_STACK, default dev)
	$(HUBNET) stack up

down: $(STAMPS)/venv ## stop the dev stack (HUBNET_STACK, default dev); its data stays in .local/<instance>
	$(HUBNET) stack down

run: install ## the dev stack with demo data: prints URLs and staff tokens; Ctrl-C stops it
	$(HUBNET) run

status: $(STAMPS)/venv ## processes and health of the stack (HUBNET_STACK, default dev)
	$(HUBNET) stack status

migration: $(STAMPS)/venv ## the next migration of SERVICE, autogenerated from its tables.py: make migration SERVICE=intake MESSAGE="…"
	@if [ -z "$(SERVICE)" ] || [ -z "$(MESSAGE)" ]; then echo 'usage: make migration SERVICE=intake MESSAGE="what changed"' >&2; exit 2; fi
	@HUBNET_STACK=$(TEST_STACK) $(HUBNET) stack up --only postgres
	@set -a; . .local/$(TEST_STACK)/stack.env; set +a; $(PY) -m shared.migrations $(SERVICE) "$(MESSAGE)"
	@sed -i '/^    # ### .* ###$$/d' services/$(SERVICE)/migrations/versions/*.py
	$(VENV)/bin/ruff check --fix --quiet services/$(SERVICE)/migrations; $(VENV)/bin/ruff format services/$(SERVICE)/migrations

contracts: $(STAMPS)/venv ## regenerate the JSON Schemas in shared/contract/schemas
	$(PY) -m shared.contract.schemas

# Message catalogs (shared/i18n/locales, read as .po at run time: nothing to compile). Japanese
# entries that are new or fuzzy after this need a translator; `make test-unit` fails until then.
PYBABEL := $(VENV)/bin/pybabel
I18N_POT := .local/i18n/messages.pot
I18N_DIR := shared/i18n/locales

i18n: $(STAMPS)/venv ## extract msgids from code and templates (babel.cfg), update the ja/en catalogs
	@mkdir -p $(dir $(I18N_POT))
	$(PYBABEL) -q extract -F babel.cfg --no-wrap --add-location=file --sort-by-file -c TRANSLATORS: \
	  --project=hubnet -o $(I18N_POT) shared services
	$(PYBABEL) -q update -i $(I18N_POT) -d $(I18N_DIR) -l ja --no-wrap --ignore-obsolete --ignore-pot-creation-date --init-missing
	@# English msgids are the English wording: no fuzzy guesses to review there.
	$(PYBABEL) -q update -i $(I18N_POT) -d $(I18N_DIR) -l en --no-wrap --ignore-obsolete --ignore-pot-creation-date --init-missing --no-fuzzy-matching

clean: ## stop every local stack and delete its state (.local/<instance>) and tool caches; keeps .venv and Kafka jars
	@for dir in .local/*/; do \
	  [ -d "$$dir" ] || continue; \
	  name=$$(basename "$$dir"); \
	  case $$name in cache|stamps) continue;; esac; \
	  if [ -x $(HUBNET) ]; then HUBNET_STACK=$$name $(HUBNET) stack down; fi; \
	  rm -rf "$$dir"; echo "removed $$dir"; \
	done
	rm -rf .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

