# Two commands for a fresh clone: `make reproduce` (the main job) and `make test`; `make lab` to work by hand.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# What JupyterLab adds to a notebook's metadata when it saves one; the filter drops it (with the outputs).
NB_EXTRA_KEYS := metadata.language_info.codemirror_mode metadata.language_info.file_extension \
	metadata.language_info.mimetype metadata.language_info.nbconvert_exporter \
	metadata.language_info.pygments_lexer metadata.language_info.version

.PHONY: reproduce test test-browser lab lab-filter install bench clean

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

# tests/ plus nbval over notebooks/ (ci profile, temporary folders: see conftest.py). The browser
# test (tests/test_browser.py) needs /usr/bin/chromium: .ci/run installs it.
test: $(STAMP) lab-filter
	$(BIN)/python -m pytest -q --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg

# Only the browser test: JupyterLab in headless Chromium (a few minutes).
test-browser: $(STAMP) lab-filter
	$(BIN)/python -m pytest -q tests/test_browser.py

# JupyterLab on notebooks/, loopback only (works as root); open the URL with the token it prints.
# Results of notebooks run there go to results/<profile>-local/ (ignored by git).
lab: $(STAMP) lab-filter
	$(BIN)/python -m jupyterlab --notebook-dir=notebooks --ip=127.0.0.1 --no-browser --allow-root

# The nbstripout git filter (.gitattributes: notebooks/*.ipynb): git stores and compares those
# notebooks without outputs, so running them in JupyterLab leaves `git status` clean.
lab-filter: $(STAMP)
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	  git config filter.nbstripout.clean '"$(CURDIR)/$(BIN)/python" -m nbstripout --keep-id' && \
	  git config filter.nbstripout.smudge cat && \
	  git config filter.nbstripout.required true && \
	  git config filter.nbstripout.extrakeys '$(NB_EXTRA_KEYS)' && \
	  git config diff.ipynb.textconv '"$(CURDIR)/$(BIN)/python" -m nbstripout -t'; \
	fi

# Speed and memory on this machine -> results/bench/bench.{json,md} (about 8 minutes on 2 cores).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) results/runs results/*/runs results/*-local results/*/tutorial
