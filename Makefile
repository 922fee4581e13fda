# One command per chore; each installs what it needs, and a second run reuses it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the server, the demo and the tests use (command:package,
# or file:package for what is not a command: the Chinese font the browser
# tests' screenshots need).
SYSTEM_TOOLS := mosquitto:mosquitto espeak-ng:espeak-ng ffmpeg:ffmpeg sox:sox \
	debootstrap:debootstrap ss:iproute2 chromium:chromium \
	/usr/share/fonts/truetype/wqy/wqy-microhei.ttc:fonts-wqy-microhei

.PHONY: demo test lint bench faults setup system asterisk venv clean

demo: setup
	$(BIN)/hotline demo

test: setup postgres
	$(BIN)/ruff check .
	$(BIN)/pytest

# Fault suite (issue 8): Asterisk, the server and the broker killed under
# real calls, against a lab of its own; prints a table, also written to
# var/faults/results.txt. `make test` runs it too (it is under tests/).
faults: setup
	$(BIN)/pytest tests/faults

# The pages' screenshots in docs/ (issue 9), taken by the browser tests on
# real calls; `make test` writes them under var/ instead.
.PHONY: screenshots
screenshots: setup
	YHT_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/pytest tests/browser

# Load bench (issue 7): our server beside native Asterisk, about 15 minutes;
# writes bench/results.json, bench/results.png and docs/performance.md.
# BENCH_ARGS="--preset quick" for a shorter run.
bench: setup
	$(BIN)/hotline bench $(BENCH_ARGS)

# The dial plan JSON Schema for editors (issue 3); a unit test keeps it current.
.PHONY: dialplan-schema
dialplan-schema: venv
	$(BIN)/hotline dialplan schema > docs/dialplan.schema.json

# The ticket tests also run on PostgreSQL (issue 6): they start a private
# cluster with initdb and pg_ctl (tests/support/postgres.py); this installs them.
.PHONY: postgres
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
	  echo "installing Debian packages: postgresql"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check ivr routing tests

setup: system venv asterisk

system:
	@missing=""; \
	for pair in $(SYSTEM_TOOLS); do \
	  what="$${pair%%:*}"; \
	  if [[ "$$what" == /* ]]; then test -e "$$what"; \
	  else command -v "$$what" >/dev/null 2>&1; fi || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[phones,test]'
	touch $@

asterisk:
	@bash asterisk/provision.sh >/dev/null

clean:
	rm -rf var build *.egg-info
