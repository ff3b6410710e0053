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

# Every notebook of the quick profile, in order: data, training, ablations, tables, figures
# -> results/quick/{notebooks,tables,figures}/ and results/quick/REPORT.md.
reproduce: $(STAMP)
	$(BIN)/agit reproduce --profile quick

# tests/ plus nbval over notebooks/ (ci profile, temporary folders: see conftest.py).
test: $(STAMP)
	$(BIN)/python -m pytest -q --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg

# Speed and memory on this machine -> results/bench/bench.{json,md} (about 8 minutes on 2 cores).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) results/runs results/*/runs
