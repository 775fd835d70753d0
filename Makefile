# Every target that needs the environment depends on .venv/.installed, so each works on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= data
ARTIFACTS ?= artifacts
PORT ?= 5000

.PHONY: install demo test lint serve bench bench-scale reliability clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/recsys train --data $(DATA) --artifacts $(ARTIFACTS)
	@echo; echo "== A warm customer (the model train chose for customers with 5+ products) =="
	$(BIN)/recsys recommend $$($(BIN)/python -m recsys_cli.demo warm --artifacts $(ARTIFACTS)) -n 5 --artifacts $(ARTIFACTS)
	@echo; echo "== A new visitor who has viewed 2 products in this session (the model chosen for short histories) =="
	$(BIN)/recsys recommend visitor-0001 $$($(BIN)/python -m recsys_cli.demo few --artifacts $(ARTIFACTS)) -n 5 --artifacts $(ARTIFACTS)
	@echo; echo "== An unknown customer (popularity) =="
	$(BIN)/recsys recommend new-customer-0001 -n 5 --artifacts $(ARTIFACTS)
	@echo; echo "== Products similar to a popular product =="
	$(BIN)/recsys similar $$($(BIN)/python -m recsys_cli.demo product --artifacts $(ARTIFACTS)) -n 5 --artifacts $(ARTIFACTS)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check recsys_cli tests benchmarks
	$(BIN)/ruff format --check recsys_cli tests benchmarks

serve: $(STAMP)
	@[ -f $(ARTIFACTS)/current ] || $(BIN)/recsys train --data $(DATA) --artifacts $(ARTIFACTS)
	$(BIN)/recsys serve --artifacts $(ARTIFACTS) --data $(DATA) --port $(PORT)

bench: $(STAMP)
	bash benchmarks/install_tools.sh
	$(BIN)/python benchmarks/run_all.py

bench-scale: $(STAMP)
	$(BIN)/python benchmarks/scale.py

reliability: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
