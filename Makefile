# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test lint demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check engine console tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy engine console

# worksteal: an idle worker takes queued tests from a busy one, so the suite does not end with one
# worker still on its queue of long tests while the other has nothing left (the default splits up front)
test: lint
	$(BIN)/pytest -n auto --dist worksteal

demo: $(STAMP)
	$(BIN)/batchdeck demo $(DEMO_ARGS)

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
