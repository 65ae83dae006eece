# The commands of the README. Each creates (or reuses) .venv and installs
# everything it needs into it from nothing but Python 3.11+ and pip.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.celib-installed
# Where no torch is installed yet, this pinned build is installed first. On this project's
# machines pip finds the CPU build on local disk; elsewhere on Linux, PyPI's wheel is a CUDA
# build of several GB: ask for the CPU one with
#   make TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu" book
TORCH_SPEC     ?= torch==2.13.0
TORCH_PIP_ARGS ?=

.PHONY: book test lab clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned, where no torch is present: on this project's machines
	# pip takes the CPU build of 2.13.0 from local disk, where a looser spec would
	# pull a multi-GB CUDA build. The package itself asks for a range, which an
	# installed torch (CPU or CUDA) satisfies, so nothing more is installed.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[torch,triton,book,test]"
	touch $(STAMP)

# Two sites, _build/html/en and _build/html/zh, and a landing page _build/html/index.html;
# tools/build_book.py derives each edition's settings from _config.yml and _toc.yml and runs
# jupyter-book build -W -n --keep-going on it.
book: $(STAMP)
	$(BIN)/python tools/build_book.py

# The notebooks run twice: first under the CPU kernels torch picks for this machine (AVX2,
# AVX-512, ...), then under its portable ones. A stored output that depends on the kernel set
# fails one of the two runs on any x86 machine. The second run adds the notebooks' time once more.
test: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/python -m pytest
	ATEN_CPU_CAPABILITY=default $(BIN)/python -m pytest chapters

# JupyterLab in .venv, celib installed: open chapters/en/ or chapters/zh/ and run the notebooks.
# As root (a container), JupyterLab refuses to start without --allow-root.
lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(if $(filter 0,$(shell id -u)),--allow-root) chapters

clean:
	rm -rf _build
