# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install sitewatch, run the demo on the bundled synthetic site
#   make test   - create .venv, install sitewatch[dev], the test browser and the case-file
#                 page's font and PDF tools, run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out

.PHONY: demo test test-all lint bench browser fonts geoid postgres redis clean

$(BIN)/.sitewatch-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.sitewatch-installed fonts
	$(BIN)/sitewatch demo --out $(DEMO_OUT)

# The browser tests drive Debian's chromium; tools/install-browser.sh installs it when missing.
browser:
	bash tools/install-browser.sh

# report.pdf of every evidence package is English and Simplified Chinese; tools/install-fonts.sh
# installs the Chinese font (and poppler-utils, openssl for the tests of the page) when missing.
fonts:
	bash tools/install-fonts.sh

geoid:
	bash tools/install-geoid.sh

redis:
	bash tools/install-redis.sh

# The registry tests run on SQLite and on PostgreSQL: tools/install-postgres.sh installs Debian's
# postgresql when missing and starts a throw-away cluster on a socket in a temporary folder (its
# URL in /tmp/sitewatch-postgres-<uid>/url, read by tests/survey/registry/conftest.py); it is
# reused by the next run; `bash tools/install-postgres.sh stop` removes it.
postgres:
	bash tools/install-postgres.sh >/dev/null

test: $(BIN)/.sitewatch-installed browser fonts geoid postgres redis
	SITEWATCH_REQUIRE_BROWSER=1 SITEWATCH_REQUIRE_POSTGRES=1 SITEWATCH_REQUIRE_GEOID=1 SITEWATCH_REQUIRE_REDIS=1 \
		$(BIN)/python -m pytest -n 2 --dist loadgroup
	$(BIN)/ruff check .
	$(BIN)/mypy

# Everything, slow tests included (benchmarks stay in `make bench`).
test-all: $(BIN)/.sitewatch-installed browser fonts geoid postgres redis
	SITEWATCH_REQUIRE_BROWSER=1 SITEWATCH_REQUIRE_POSTGRES=1 SITEWATCH_REQUIRE_GEOID=1 SITEWATCH_REQUIRE_REDIS=1 \
		SITEWATCH_HYPOTHESIS_PROFILE=explore \
		$(BIN)/python -m pytest -n 2 --dist loadgroup -m 'not benchmark and not sitl'

lint: $(BIN)/.sitewatch-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check survey flightplans change_detection maps tests benchmarks
	$(BIN)/mypy

bench: $(BIN)/.sitewatch-installed
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
