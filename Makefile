# Two commands do everything on a fresh machine:  make demo   and   make test
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
EXTRAS ?= all,dev
# OpenMP runtimes (LightGBM, FAISS, torch) spin-wait and slow down badly on a busy 2-core box.
export OMP_WAIT_POLICY := PASSIVE
DEMO_OUT ?= out/demo

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# CPU build first: an unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[$(EXTRAS)]'
	touch $@

demo: install
	$(VENV)/bin/recsys genres train --catalog data/spotify_demo.csv.gz --out $(DEMO_OUT)/genre_model --folds 3

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) out build *.egg-info
