PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install native pure lint bench clean

$(BIN)/originguard: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/originguard

# The hot path compiled with mypyc (see src/originguard/native.py); interpreted if that fails.
COMPILE := $(BIN)/python scripts/compile_hot_path.py || echo "warning: hot path not compiled (needs gcc and the Python headers); it runs interpreted"

native: install
	$(COMPILE)

pure: install
	$(BIN)/python scripts/compile_hot_path.py --remove

demo: native
	$(BIN)/originguard demo

test: install
	bash scripts/test-services.sh
	$(COMPILE)
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/mypy

bench: native
	bash bench/run.sh

clean:
	-$(BIN)/python scripts/compile_hot_path.py --remove
	rm -rf $(VENV) build src/build *.egg-info
