# mgritlab — one-command set-up.  `make test` and `make lessons` each create .venv
# (Python >= 3.10 with pip is all they need), install everything, then run.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= build/lessons
# torch is pinned: 2.13.0 is a CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: setup test test-fast lint lessons lab student strip bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[lessons,test]' "$(TORCH)"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not notebook and not mpi"

lint: setup
	$(BIN)/ruff check .

lessons: setup
	$(BIN)/python -m mgritlab lessons run --out $(OUT) $(if $(RESUME),--resume,)

lab: setup
	$(BIN)/jupyter lab lessons/

student: setup
	$(BIN)/python -m mgritlab lessons student --out build/student

strip: setup
	$(BIN)/python -m mgritlab lessons strip

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build
