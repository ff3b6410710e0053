# Two commands for a fresh clone: `make reproduce` (the main job) and `make test`; `make lab` to work by hand.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: reproduce full test test-browser lab install bench gpu-check crosscheck clean

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

# The quick preset with 3 seeds of every row and sweep point and the other synthetic pairs: every
# claim with a seed spread (about an hour on 2 cores) -> results/full/.
full: $(STAMP)
	$(BIN)/agit reproduce --profile full

# tests/ plus nbval over notebooks/ (ci profile, temporary folders: see conftest.py). The browser
# test (tests/test_browser.py) needs /usr/bin/chromium: .ci/run installs it.
test: $(STAMP)
	$(BIN)/python -m pytest -q --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg

# Only the browser test: JupyterLab in headless Chromium (a few minutes).
test-browser: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_browser.py

# JupyterLab on notebooks/, loopback only (works as root); open the URL with the token it prints.
# Saving there keeps the committed notebooks without outputs (tools/jupyter_lab_config.py); their
# results go to results/<profile>-local/ (ignored by git): `git status` stays clean.
lab: $(STAMP)
	$(BIN)/python -m jupyterlab --config=tools/jupyter_lab_config.py --notebook-dir=notebooks \
		--ip=127.0.0.1 --no-browser --allow-root

# Speed and memory on this machine -> results/bench/bench.{json,md} (about 8 minutes on 2 cores).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

# The paper's setting on one CUDA GPU (at most 8 minutes) -> results/bench/gpu.{json,md}; without CUDA, one line.
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

# The authors' released TF code beside `official` -> results/crosscheck/crosscheck.{md,json} (~23 min on
# 2 cores); RELEASED: a local clone of theirs; SECTIONS="outputs data checkpoint" runs those parts only (~3 min)
# (about 3 min; the iterations section is the long one). Installs TensorFlow first.
crosscheck: $(STAMP)
	@test -n "$(RELEASED)" || { echo "usage: make crosscheck RELEASED=/path/to/clone"; exit 2; }
	$(BIN)/python -m pip install --quiet -e '.[crosscheck]'
	$(BIN)/python tools/crosscheck_released.py $(RELEASED) $(if $(SECTIONS),--sections $(SECTIONS))

clean:
	rm -rf $(VENV) results/runs results/*/runs results/*-local results/*/tutorial
