# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium

.PHONY: demo test lint bench bench-awrsr bench-baselines bench-peers install clean system-tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: the local CPU wheel; a looser pin would pull gigabytes of CUDA packages
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test,lint,ann]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/seqlens demo

# Two tests drive Debian tools: the web page's browser test (chromium; Playwright's own browser download cannot
# be used here) and the alerting rules' check (promtool, package prometheus). Install what is missing when apt
# is usable; never fail: without a tool its test is skipped.
system-tools:
	@missing=; [ -x $(CHROMIUM) ] || missing=" chromium"; command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
		if [ "$$SUDO" != none ]; then \
			echo "installing$$missing with apt-get for the browser and alerting-rules tests"; \
			(timeout 900 $$SUDO apt-get -o Acquire::http::Timeout=30 update -qq \
				&& DEBIAN_FRONTEND=noninteractive timeout 900 $$SUDO apt-get -o Acquire::http::Timeout=30 install -y -qq --no-install-recommends $$missing) >/dev/null 2>&1 \
				|| echo "note: could not install$$missing; their tests will be skipped"; \
		else echo "note: no root or sudo for apt-get; the browser and alerting-rules tests will be skipped"; fi; \
	fi; true

# mypy checks the whole package (zero errors)
TYPED := src/seqlens

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/mypy $(TYPED)

test: $(STAMP) system-tools
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m benchmarks.core
	$(PY) -m benchmarks.epoch_speed
	$(PY) -m benchmarks.report

# The AWRSR study (docs/awrsr.md) and the baselines comparison (docs/baselines.md, uses the study's SASRec):
# hours on 2 cores at the default budgets; see each script's --help for smaller ones.
bench-awrsr: $(STAMP)
	$(PY) -m benchmarks.awrsr_study

bench-baselines: $(STAMP)
	$(PY) -m benchmarks.baselines

# RecTools' and RecBole's SASRec next to ours (docs/peers.md). The peers live in their own venv so their pins
# never touch seqlens' dependencies; torch stays pinned to the local CPU wheel through the constraints file.
# A peer that fails to install is reported by the benchmark with its install log instead of stopping it.
# Hours on 2 cores at the full budgets: pass options with ARGS, e.g. make bench-peers ARGS="--epochs 10".
PEERS_PYTHON ?= python3.11
PEERS_VENV := .venv-peers
PEERS_PIP := $(PEERS_VENV)/bin/python -m pip
PEERS_STAMP := $(PEERS_VENV)/.installed
PEERS_CONSTRAINTS := benchmarks/peers-constraints.txt

$(PEERS_STAMP): $(PEERS_CONSTRAINTS)
	test -x $(PEERS_VENV)/bin/python || $(PEERS_PYTHON) -m venv $(PEERS_VENV)
	rm -f $(PEERS_VENV)/install*.log
	$(PEERS_PIP) install --quiet --upgrade pip
	# torch first, pinned: the local CPU wheel; a looser pin would pull gigabytes of CUDA packages
	$(PEERS_PIP) install --quiet torch==2.13.0 -c $(PEERS_CONSTRAINTS)
	# both peers in one resolution; if that fails, each on its own so that one broken peer spares the other
	$(PEERS_PIP) install --quiet "rectools[torch]" recbole "setuptools<80" -c $(PEERS_CONSTRAINTS) > $(PEERS_VENV)/install.log 2>&1 || { \
		echo "installing RecTools and RecBole together failed (see $(PEERS_VENV)/install.log); trying each alone"; \
		$(PEERS_PIP) install --quiet "rectools[torch]" -c $(PEERS_CONSTRAINTS) > $(PEERS_VENV)/install-rectools.log 2>&1 || echo "RecTools failed to install"; \
		$(PEERS_PIP) install --quiet recbole "setuptools<80" -c $(PEERS_CONSTRAINTS) > $(PEERS_VENV)/install-recbole.log 2>&1 || echo "RecBole failed to install"; \
		exit 1; }
	touch $(PEERS_STAMP)

bench-peers: $(STAMP)
	@$(MAKE) --no-print-directory $(PEERS_STAMP) || echo "note: $(PEERS_VENV) is incomplete; the benchmark reports the peers that cannot run"
	TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 $(PY) -m benchmarks.peers $(ARGS)

clean:
	rm -rf $(VENV) $(PEERS_VENV) runs .pytest_cache
