# adstream: the front door. `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
APP_STAMP := $(VENV)/.installed
KAFKA_STAMP := lib/kafka/.fetched
FLINK_VENV := .venv-flink
FLINK_STAMP := $(FLINK_VENV)/.installed
FLINK_JARS_STAMP := lib/flink/.fetched
FLINK_FUNCTIONS_JAR := lib/flink/adstream-flink-functions.jar
JAVA_SOURCES := $(shell find java/src -name '*.java')
SPARK_JARS_STAMP := lib/spark/.fetched
# The browser tests drive Debian's chromium through its chromium-driver (Selenium).
BROWSER := /usr/bin/chromium /usr/bin/chromedriver
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
MVN := mvn --batch-mode --quiet -Dstyle.color=never
# `make test` runs its Python tests in this many processes (pytest-xdist), each test module
# whole in one of them; each process starts a broker and an emulator of its own.
TEST_WORKERS ?= 2

.PHONY: help setup run test test-unit lint format package bench bench-quick faults clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(APP_STAMP) $(FLINK_STAMP) $(KAFKA_STAMP) $(FLINK_JARS_STAMP) $(FLINK_FUNCTIONS_JAR) $(SPARK_JARS_STAMP) $(BROWSER) ## Install whatever is missing

$(APP_STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "adstream: $(PYTHON) not found; install Python 3.11"; exit 1; }
	@echo "adstream: creating $(VENV) (Python packages from PyPI)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

$(FLINK_STAMP): requirements-flink.txt pyproject.toml
	@echo "adstream: creating $(FLINK_VENV) for the Flink job (apache-flink from PyPI)"
	$(PYTHON) -m venv $(FLINK_VENV)
	$(FLINK_VENV)/bin/pip install --quiet --upgrade pip
	$(FLINK_VENV)/bin/pip install --quiet -r requirements-flink.txt
	$(FLINK_VENV)/bin/pip install --quiet --no-deps -e .
	@touch $@

lib/%/.fetched: pom.xml
	@command -v mvn >/dev/null || { echo "adstream: mvn not found; install Maven"; exit 1; }
	@echo "adstream: fetching the $* jars from Maven Central into lib/$*"
	rm -rf lib/$*
	$(MVN) -P $* dependency:copy-dependencies -DoutputDirectory=lib/$* -DincludeScope=runtime
	@touch $@

# The join job's own SQL functions (java/), next to the connector: after it, as fetching the
# connector empties lib/flink first.
$(FLINK_FUNCTIONS_JAR): java/pom.xml $(JAVA_SOURCES) $(FLINK_JARS_STAMP)
	@echo "adstream: building the join job's SQL functions and Kinesis connector (java/) into lib/flink"
	$(MVN) -f java/pom.xml package -DskipTests
	cp java/target/adstream-flink-functions.jar $@

$(BROWSER) &:
	@command -v apt-get >/dev/null || { echo "adstream: no apt-get here; install chromium and chromium-driver (the browser tests need them)"; exit 1; }
	@echo "adstream: installing chromium and chromium-driver for the browser tests (apt-get)"
	@{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; } \
		|| { echo "adstream: could not install chromium and chromium-driver; install them as root (apt-get install chromium chromium-driver) and run make again"; exit 1; }

run: setup ## Run the main job with local defaults (Ctrl-C stops)
	$(BIN)/adstream run

test: setup ## Run the whole test suite (JUnit, then the Python unit and integration tests)
	@echo "adstream: JUnit tests of java/ (the SQL functions and the Kinesis connector)"
	$(MVN) -f java/pom.xml test -Dadstream.python=$(CURDIR)/$(BIN)/python
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

test-unit: setup ## Run the fast tests only (tests/unit: no JVM)
	$(BIN)/pytest tests/unit

# The benchmarks run as scripts, each with its own folder first on sys.path: bench/*.py import
# each other (and contenders.output_table), bench/contenders/*.py each other by bare name. One
# mypy call would find contenders/output_table.py under both names, hence one call for each.
lint: setup ## Lint, format check and type check
	$(BIN)/ruff check src tests bench deploy
	$(BIN)/ruff format --check src tests bench deploy
	$(BIN)/mypy
	$(BIN)/mypy deploy/adstream_msf/main.py deploy/glue/adstream_enrich.py
	$(BIN)/mypy bench/*.py
	MYPYPATH=bench/contenders $(BIN)/mypy --explicit-package-bases bench/contenders

format: setup ## Format the code
	$(BIN)/ruff format src tests bench deploy
	$(BIN)/ruff check --fix src tests bench deploy

package: setup ## Build the AWS artefacts into dist/ (ADSTREAM_WAREHOUSE=s3://<bucket>/<prefix>/warehouse; docs/aws.md)
	$(BIN)/adstream package

bench: setup ## Benchmarks: adstream against the alternatives, then each stage (hours; docs/benchmarks.md)
	$(BIN)/python bench/compare.py
	$(BIN)/python bench/generator_throughput.py
	$(BIN)/python bench/join_throughput.py
	$(BIN)/python bench/join_start.py
	$(BIN)/python bench/enrich_throughput.py
	$(BIN)/python bench/pipeline_throughput.py
	$(BIN)/python bench/run_timeline.py
	$(BIN)/python bench/platform_throughput.py
	$(BIN)/python bench/maintain_tables.py
	$(BIN)/python bench/sort_order.py

bench-quick: setup ## A spot check of the comparison on small data (minutes; nothing is saved)
	$(BIN)/python bench/compare.py --quick --output /tmp/adstream-bench-quick.json

faults: setup ## The fault matrix: kill -9 the broker, the join, the enrichment; pause the join; fill the disk; kill as the run finishes; verified (about an hour, root for the disk; docs/reliability.md)
	$(BIN)/python bench/fault_matrix.py

clean: ## Remove environments, jars and local data
	rm -rf $(VENV) $(FLINK_VENV) lib java/target .adstream .pytest_cache .mypy_cache .ruff_cache .hypothesis
