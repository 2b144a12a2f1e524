# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install sitewatch, run the demo on the bundled synthetic site
#   make test   - create .venv, install sitewatch[dev] and the test browser, run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out

.PHONY: demo test test-all lint bench browser clean

$(BIN)/.sitewatch-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.sitewatch-installed
	$(BIN)/sitewatch demo --out $(DEMO_OUT)

# The browser tests drive Debian's chromium; tools/install-browser.sh installs it when missing.
browser:
	bash tools/install-browser.sh

test: $(BIN)/.sitewatch-installed browser
	SITEWATCH_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -n 2 --dist loadgroup
	$(BIN)/ruff check .
	$(BIN)/mypy

# Everything, slow tests included (benchmarks stay in `make bench`).
test-all: $(BIN)/.sitewatch-installed browser
	SITEWATCH_REQUIRE_BROWSER=1 SITEWATCH_HYPOTHESIS_PROFILE=explore \
		$(BIN)/python -m pytest -n 2 --dist loadgroup -m 'not benchmark and not sitl'

lint: $(BIN)/.sitewatch-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check survey flightplans change_detection maps tests benchmarks
	$(BIN)/mypy

bench: $(BIN)/.sitewatch-installed
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
