# PLBA — the usual targets. `make test` is what CI runs (.ci/run); `make demo` is the main job.
SHELL := /bin/bash
PY ?= python3
DEB_PACKAGES := openjdk-17-jre-headless maven qemu-system-x86 qemu-utils prometheus docker-compose
PYTEST_ARGS ?=

.PHONY: setup deps install kafka-up kafka-down lint format typecheck unit integration test demo proto clean

setup: deps install ## Install everything: Debian packages (if missing) and the project with test extras

deps: ## Debian packages the tests need (java, maven, qemu, prometheus, docker-compose for config checks)
	@missing=""; \
	for t in java mvn qemu-system-x86_64 promtool docker-compose; do command -v $$t >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $(DEB_PACKAGES)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends $(DEB_PACKAGES); \
	fi

install: ## The project in editable mode with test extras
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'

kafka-up: ## Start the local single-node Kafka broker and create the topics
	plba kafka up
	plba topics create

kafka-down:
	plba kafka down

lint: ## ruff lint + format check
	ruff check .
	ruff format --check .

format:
	ruff format .
	ruff check --fix .

typecheck:
	mypy

unit: ## Tests that need nothing running
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: ## Tests against the real broker, QEMU, Prometheus
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

test: setup ## Everything CI checks: install, start Kafka, lint, types, the whole suite, stop Kafka
	@set -e; trap '$(MAKE) --no-print-directory kafka-down' EXIT; \
	$(MAKE) --no-print-directory kafka-up; \
	$(MAKE) --no-print-directory lint; \
	$(MAKE) --no-print-directory typecheck; \
	$(PY) -m pytest tests $(PYTEST_ARGS)

demo: setup ## The main job: plba demo on the embedded local broker
	plba demo

proto: ## Regenerate the executor's gRPC code from schemas/executor.proto
	$(PY) -m schemas.protogen

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache build *.egg-info
