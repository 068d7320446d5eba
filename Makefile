# Two commands do everything on a fresh machine:  make demo   and   make test
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
EXTRAS ?= all,dev
# OpenMP runtimes (LightGBM, FAISS, torch) spin-wait and slow down badly on a busy 2-core box.
export OMP_WAIT_POLICY := PASSIVE
DEMO_OUT ?= out/demo

.PHONY: install demo test test-fast bench clean chromium

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# CPU build first: an unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[$(EXTRAS)]'
	# musicnn's trained checkpoints (block musicnn reads them; its TF1 code is never imported, hence --no-deps)
	$(PIP) install --quiet --no-deps musicnn==0.1.0
	# espeak-ng (Debian) speaks the non-English test vocals of the lyrics quality gate; tests skip without it.
	# No apt-get (macOS, other distributions): skipped with a note, never an error.
	command -v espeak-ng >/dev/null || { command -v apt-get >/dev/null 2>&1 && \
		{ apt-get install -y -q espeak-ng || (apt-get update -q && apt-get install -y -q espeak-ng); }; } || \
		echo "note: espeak-ng not installed (no apt-get, or it failed): its tests skip"
	touch $@

RECSYS := $(VENV)/bin/recsys

demo: install
	@echo "== 1/5 genre model: artist-grouped CV beside baselines (bundled TidyTuesday subset)"
	$(RECSYS) genres train --catalog data/spotify_demo.csv.gz --out $(DEMO_OUT)/genre_model --folds 3
	@echo "== 2/5 audio feature blocks from the bundled clips (cached: a rerun redoes nothing)"
	$(RECSYS) features extract --audio-dir data/audio --out $(DEMO_OUT)/features --blocks spectral,audiostats,musicnn --quiet
	@echo "== 3/5 index: embeddings, FAISS, k-means clusters, rules mined from 500 synthetic users"
	$(RECSYS) build-index --catalog data/spotify_demo.csv.gz --features $(DEMO_OUT)/features \
		--simulate-users 500 --out $(DEMO_OUT)/index
	@echo "== 4/5 what to play next, with reasons"
	$(RECSYS) recommend --index $(DEMO_OUT)/index --recent 6b2RcmUt1g9N9mQ3CbjX2Y --recent 09IStsImFySgyp0pIQdqAc -k 5
	$(RECSYS) similar --index $(DEMO_OUT)/index --track Kevin_MacLeod_-_Vibe_Ace -k 3
	@echo "== 5/5 leave-last-out evaluation beside popularity, item-kNN and content baselines"
	@echo "   (synthetic users: the rules find what the generator planted; see docs/engine.md for real playlists)"
	$(RECSYS) evaluate --index $(DEMO_OUT)/index --histories $(DEMO_OUT)/index/histories.parquet
	@echo "== serve it: search, what to play next with reasons, the 2-D map, a report per track"
	@echo "   $(RECSYS) serve --index $(DEMO_OUT)/index --features $(DEMO_OUT)/features --audio-dir data/audio"
	@echo "   then open http://127.0.0.1:8000/"

# The browser test (tests/test_serve_browser.py) drives Debian's Chromium through Playwright (never
# `playwright install`, which downloads a browser): install it with apt-get when it is missing.
chromium:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null 2>&1 \
		&& (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "note: /usr/bin/chromium missing and apt-get failed: the browser test will be skipped."; }

test: install chromium
	@command -v java >/dev/null 2>&1 || echo "note: no 'java' on PATH: the Spark rule-mining tests will be skipped." \
		"Install Java 17+ (Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless; macOS: brew install openjdk@17)."
	$(PY) -m ruff check recsys pipelines scripts tests
	$(PY) -m pytest -q

# The suite without the tests marked slow (real model weights, browsers, Spark, Dask clusters).
test-fast: install
	$(PY) -m ruff check recsys pipelines scripts tests
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) out build *.egg-info
