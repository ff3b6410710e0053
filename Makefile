# Two commands for a fresh clone: `make reproduce` (the main job) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: reproduce test install bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

reproduce: $(STAMP)
	$(BIN)/agit data synth
	$(BIN)/agit train --preset quick --out results/runs/quick
	$(BIN)/agit translate --run results/runs/quick --input data/synthetic/testA --direction s2t --out results/quick/translations/s2t
	$(BIN)/agit translate --run results/runs/quick --input data/synthetic/testB --direction t2s --out results/quick/translations/t2s

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) results/runs
