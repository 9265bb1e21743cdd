# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow lint typecheck bench browser clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/lock.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements/lock.txt -e '.[dev,ray,kernels,fast]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/galu run memorization --preset quick

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" --durations=5

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow --durations=5

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Debian's chromium + chromedriver for the report's browser test (needs root and apt; the test
# skips with a message where they are missing).
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then echo "chromium: present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    chromium chromium-driver >/dev/null || (apt-get update -q >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    chromium chromium-driver >/dev/null) || echo "could not install chromium"; \
	else echo "chromium missing and apt-get unavailable: the browser test will skip"; fi

bench: $(STAMP)
	$(BIN)/galu bench paths

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
