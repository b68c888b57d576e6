PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install lint bench clean

$(BIN)/originguard: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/originguard

demo: install
	$(BIN)/originguard demo

test: install
	bash scripts/test-services.sh
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/mypy

bench: install
	bash bench/run.sh

clean:
	rm -rf $(VENV) build *.egg-info
