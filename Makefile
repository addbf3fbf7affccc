PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test clean

# Re-installs only when the project's dependency declarations change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Trains the small demo model once (about two minutes on a 2-core CPU), then serves the app on 127.0.0.1:7860.
demo: $(STAMP)
	$(BIN)/python -m img2img demo --out runs/demo --install-to checkpoints
	$(BIN)/python app.py --checkpoints checkpoints --examples runs/demo/examples

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs
