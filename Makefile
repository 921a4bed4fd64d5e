# Two commands: `make lab` opens the kit, `make test` runs every test. Each creates the
# virtual environment in .venv on first use and installs only when pyproject.toml changed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
KIT    := $(VENV)/.kit-installed
TESTKIT:= $(VENV)/.test-installed
# A lesson cell takes seconds; 300 s bounds one that never answers instead of nbval's default 2000 s.
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=300
PYTEST_ARGS ?=

.PHONY: lab test test-fast notebooks exercises check grade class bench lint clean help

help:
	@echo "make lab          open the kit in JupyterLab (creates .venv on first use)"
	@echo "make test         run every test: unit, property, notebooks (nbval), browser"
	@echo "make check NB=exercises/02_queues_and_pub_sub.ipynb   check one exercise notebook"
	@echo "make grade SUBMISSIONS=folder   grade a folder of submitted notebooks (in a bubblewrap sandbox)"
	@echo "make class OUT=folder   write the class edition (lessons + exercises, no solutions) to hand out"
	@echo "make notebooks    re-execute lessons and solutions, writing their outputs"
	@echo "make exercises    regenerate exercises/ from solutions/"
	@echo "make bench        run the benchmarks"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(KIT): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(TESTKIT): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	@touch $@ $(KIT)

# Extra arguments for `jupyter lab`, e.g. make lab LAB_ARGS="--no-browser --port=8899".
LAB_ARGS ?=
# JupyterLab refuses to start as root (a container, a cloud VM, a CI runner) without --allow-root.
AS_ROOT := $(filter 0,$(shell id -u 2>/dev/null))

lab: $(KIT)
ifneq ($(AS_ROOT),)
	@echo "make lab: you are root (a container, a cloud VM or CI?), so JupyterLab starts with --allow-root"
endif
	$(BIN)/jupyter lab notebooks/ $(if $(AS_ROOT),--allow-root) $(LAB_ARGS)

# pytest exit code 5 means it collected no test at all (e.g. PYTEST_ARGS="-k typo"): a failure, said plainly.
test: $(TESTKIT)
	$(BIN)/ruff check .
	status=0; env -u MPLBACKEND $(BIN)/python -m pytest $(NBVAL) tests notebooks solutions $(PYTEST_ARGS) \
	  || status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: no test was collected (pytest exit code 5): check the -k/-m" \
	  "in PYTEST_ARGS and that tests/, notebooks/ and solutions/ exist"; fi; exit $$status

test-fast: $(TESTKIT)
	$(BIN)/python -m pytest tests -m "not browser and not slow" $(PYTEST_ARGS)

lint: $(TESTKIT)
	$(BIN)/ruff check .

notebooks: $(TESTKIT)
	$(BIN)/python -m evbroker.build notebooks

exercises: $(TESTKIT)
	$(BIN)/python -m evbroker.build exercises

check: $(TESTKIT)
	@test -n "$(NB)" || (echo "usage: make check NB=exercises/NN_name.ipynb" && exit 2)
	$(BIN)/python -m evbroker.grading check "$(NB)"

grade: $(TESTKIT)
	@test -n "$(SUBMISSIONS)" || (echo "usage: make grade SUBMISSIONS=folder [OUT=gradebook]" && exit 2)
	$(BIN)/python -m evbroker.grading grade "$(SUBMISSIONS)" --out "$(or $(OUT),gradebook)"

class: $(TESTKIT)
	$(BIN)/python -m evbroker.grading class "$(or $(OUT),class-edition)"

bench: $(TESTKIT)
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/widgets.py
	$(BIN)/python benchmarks/explore.py
	$(BIN)/python benchmarks/real.py
	$(BIN)/python benchmarks/workflows.py
	$(BIN)/python benchmarks/grading.py sample

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache artifacts
