# Every target that needs the environment depends on an install stamp, so each works on a fresh clone:
# demo and serve need only the runtime (.venv/.installed-runtime); test, lint and the benchmarks add the dev tools (.venv/.installed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= data
ARTIFACTS ?= artifacts
PORT ?= 5000

.PHONY: install runtime demo test test-quick lint serve bench bench-scale reliability clean

# Two stamps: the runtime (what the demo and the server need) and the dev tools on top (tests, lint, benchmarks).
RUNTIME := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed

install: $(STAMP)

runtime: $(RUNTIME)

$(RUNTIME): setup.cfg pyproject.toml
	@echo "== Installing recsys and its runtime dependencies into $(VENV) (numpy, pandas, scipy, implicit, lightfm, flask, ...) =="
	@start=$$(date +%s); \
	  $(PYTHON) -m venv $(VENV) && \
	  $(BIN)/pip install -qq --no-compile --disable-pip-version-check -e . && \
	  echo $$(( $$(date +%s) - start )) > $(VENV)/.install-seconds && \
	  echo "   installed in $$(cat $(VENV)/.install-seconds) s"
	@touch $@

$(STAMP): $(RUNTIME)
	@echo "== Adding the dev tools (pytest, hypothesis, schemathesis, ruff, ...) =="
	@start=$$(date +%s); \
	  $(BIN)/pip install -qq --disable-pip-version-check -e ".[dev]" && \
	  echo "   installed in $$(( $$(date +%s) - start )) s"
	@bash .ci/install_services.sh
	@touch $@

# Each step prints the command it runs, with the example ids filled in.
demo: $(RUNTIME)
	@start=$$(date +%s); set -e; \
	  echo "== Training on the sample shop in $(DATA)/ (30,000 events); train picks a model per customer segment =="; \
	  echo "$$ recsys train --data $(DATA) --artifacts $(ARTIFACTS)"; \
	  $(BIN)/recsys train --data $(DATA) --artifacts $(ARTIFACTS); \
	  eval "$$($(BIN)/python -m recsys_cli.demo all --artifacts $(ARTIFACTS))"; \
	  echo; echo "== A warm customer (the model train chose for customers with many products) =="; \
	  echo "$$ recsys recommend $$warm -n 5"; \
	  $(BIN)/recsys recommend $$warm -n 5 --artifacts $(ARTIFACTS); \
	  echo; echo "== A new visitor who has viewed 2 products in this session (the model chosen for short histories) =="; \
	  echo "$$ recsys recommend visitor-0001 $$few -n 5"; \
	  $(BIN)/recsys recommend visitor-0001 $$few -n 5 --artifacts $(ARTIFACTS); \
	  echo; echo "== An unknown customer (popularity) =="; \
	  echo "$$ recsys recommend new-customer-0001 -n 5"; \
	  $(BIN)/recsys recommend new-customer-0001 -n 5 --artifacts $(ARTIFACTS); \
	  echo; echo "== Products similar to a popular product =="; \
	  echo "$$ recsys similar $$product -n 5"; \
	  $(BIN)/recsys similar $$product -n 5 --artifacts $(ARTIFACTS); \
	  echo; echo "Demo done in $$(( $$(date +%s) - start )) s (installing took $$(cat $(VENV)/.install-seconds 2>/dev/null || echo '?') s the first time)."; \
	  echo "Next: your own data in three steps (README), or 'make serve' for the REST API on port $(PORT)."

# test: everything but the minutes-long reliability tier, in random order (pytest-randomly prints the
# seed; add --randomly-seed=N to repeat an order, -p no:randomly for file order). test-quick: without the slow tests.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-quick: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check recsys_cli tests benchmarks
	$(BIN)/ruff format --check recsys_cli tests benchmarks

serve: $(RUNTIME)
	@[ -f $(ARTIFACTS)/current ] || $(BIN)/recsys train --data $(DATA) --artifacts $(ARTIFACTS)
	$(BIN)/recsys serve --artifacts $(ARTIFACTS) --data $(DATA) --port $(PORT)

bench: $(STAMP)
	bash benchmarks/install_tools.sh
	$(BIN)/python benchmarks/run_all.py

bench-scale: $(STAMP)
	$(BIN)/python benchmarks/scale.py

reliability: $(STAMP)
	$(BIN)/python -m pytest -q -m reliability

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
