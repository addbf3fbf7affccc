PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast clean

# Re-installs only when the project's dependency declarations change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Serves the app on 127.0.0.1:7860 with the bundled aerial-to-map model (offline), training on:
# data from datasets/ (uploads in datasets/uploads), runs in runs/.
demo: $(STAMP)
	$(BIN)/python app.py --checkpoints checkpoints --allow-training --data-root datasets --runs runs

# Two workers (pytest-xdist), each test module on one of them, so that a module's fixtures
# (trained models, Inception features) are built once: about half the time on 2 cores.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadscope

# The tests not marked slow: at most 90 s (benchmarks/RESULTS.md, "Test suite").
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadscope -m "not slow"

clean:
	rm -rf $(VENV) runs
