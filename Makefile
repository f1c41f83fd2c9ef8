# Everything a fresh machine needs: `make test` (set-up + lint + tests), `make demo` (set-up + demo).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench setup clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-crf.txt requirements-tflite.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-crf.txt -r requirements-dev.txt
	$(PY) -m pip install -q -r requirements-tflite.txt || echo "LiteRT has no wheel here: tf.lite.Interpreter runs .tflite files"
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile tests

demo: $(STAMP)
	$(PY) demo.py

bench: $(STAMP)
	$(PY) bench/bench.py

clean:
	rm -rf $(VENV) demo_run
