# LSTMs from scratch — every target sets up .venv first (once) from the pinned requirements.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEVICE ?= cpu
CLUSTER ?=
JOBS ?= $(shell nproc)
export LSTM_COURSE_DEVICE := $(DEVICE)
export PATH := $(abspath $(VENV))/bin:$(PATH)
export PYTHONUNBUFFERED := 1

.PHONY: setup assign release solutions autograde feedback grades report lab demo zoo test lint bench screenshots clean \
	gpu-check gpu-wheels gpu-install hub hub-setup hub-remove

setup: $(VENV)/.ready

$(VENV)/.ready: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name lstm-course --display-name "Python (LSTM course)" >/dev/null
	touch $@

## Instructor: release into notebooks/ and executed solutions into solutions/
assign: setup
	$(PY) -m autograder assign

release: setup
	$(PY) -m autograder release

solutions: setup
	$(PY) -m autograder solutions

## Grade everything under submitted/<student>/<assignment>/, JOBS at a time, sandboxed (DEVICE=cuda: on the GPU);
## CLUSTER=tcp://host:8786 (or a scheduler file, or DASK_SCHEDULER_ADDRESS): on that Dask cluster's workers
autograde: setup
	GRADING_JOBS=$(JOBS) CLUSTER="$(CLUSTER)" $(PY) -m autograder autograde

## HTML feedback in feedback/; SHOW_HIDDEN_TESTS=1 reveals hidden test source (after the deadline)
feedback: setup
	$(PY) -m autograder feedback

## Per-student, per-exercise table and grades.csv; FORMAT=canvas or FORMAT=moodle: that LMS's grade-import CSV
grades: setup
	$(PY) -m autograder grades $(if $(FORMAT),--format $(FORMAT))

## What the class got wrong: class-report.html (misconceptions by bug id, scores, stuck, late, slowest)
report: setup
	$(PY) -m autograder report

## Students: JupyterLab on the release
lab: setup
	$(VENV)/bin/jupyter lab notebooks/

demo: setup
	$(PY) -m autograder demo

## The bug zoo and correct-style corpus: mutant -> points lost per exercise -> the message students saw
zoo: setup
	$(PY) -m autograder zoo

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n $(JOBS) --dist loadfile --no-loadscope-reorder --durations=25 tests

## Benchmarks (not tests): speed ladder vs torch.nn.LSTM, grading throughput; results in bench-results/
bench: setup
	mkdir -p bench-results
	for b in benchmarks/*.py; do $(PY) $$b --out bench-results || exit 1; done

## The GPU path against the CPU (DEVICE=cuda; DEVICE=cpu checks the CPU against itself): every notebook's hidden
## tests on its reference and sample mutants, TF32 off in the grading kernel, one submission through nbgrader;
## the table in gpu-check/summary.md, or in $$OUT/summary.md where OUT is set
gpu-check: setup
	GRADING_JOBS=$(JOBS) $(PY) -m autograder.gpu_check --out $(or $(OUT),gpu-check)

## The wheels a bare GPU machine lacks (Python 3.12, its own PyTorch), into .whl/ to carry there with the checkout
gpu-wheels: setup
	$(PY) -m autograder.gpu_check wheels

## On that machine: .venv over its python3 and PyTorch, with the carried wheels; then `make gpu-check DEVICE=cuda`
gpu-install:
	$(PYTHON) -m autograder.gpu_check install

## A course server, as root: JupyterHub on 127.0.0.1:$(HUB_PORT) with the demo class (Unix users: an instructor,
## three students), nbgrader's exchange and the Formgrader as the course service; the class lives in $(HUB_HOME)
HUB_HOME ?= .hub/demo
HUB_PORT ?= 8000
hub: hub-setup
	$(PY) -m autograder.hub.make_class --home $(HUB_HOME) --port $(HUB_PORT)
	$(PY) -m autograder.hub.run --home $(HUB_HOME)

## The hub's proxy: configurable-http-proxy as hub/package-lock.json pins it, into .hub/node (npm, Node.js)
hub-setup: setup .hub/node/.ready

.hub/node/.ready: hub/package.json hub/package-lock.json
	mkdir -p .hub/node
	cp hub/package.json hub/package-lock.json .hub/node/
	npm ci --prefix .hub/node --no-audit --no-fund --loglevel=error
	touch $@

## Take the demo class away again: its users, their homes and processes, $(HUB_HOME)
hub-remove: setup
	$(PY) -m autograder.hub.make_class --home $(HUB_HOME) --remove

## The README's screenshots (docs/screenshots/), taken by the browser tests in chromium
screenshots: setup
	LSTM_SCREENSHOTS=$(abspath docs/screenshots) $(PY) -m pytest -p no:cacheprovider tests/test_browser.py tests/test_hub.py

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf submitted autograded feedback gradebook.db grades.csv grades-canvas.csv grades-moodle.csv class-report.html \
		bench-results .pytest_cache gpu-check
