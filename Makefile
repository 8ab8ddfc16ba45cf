# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium

.PHONY: demo test bench bench-awrsr bench-baselines install clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: the local CPU wheel; a looser pin would pull gigabytes of CUDA packages
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/seqlens demo

# The web page's browser test drives Debian's chromium (Playwright's own browser download cannot be used
# here). Install it when it is missing and apt is usable; never fail: without it that test is skipped.
browser:
	@if [ ! -x $(CHROMIUM) ] && command -v apt-get >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
		if [ "$$SUDO" != none ]; then \
			echo "installing chromium with apt-get for the browser test"; \
			(timeout 900 $$SUDO apt-get -o Acquire::http::Timeout=30 update -qq \
				&& DEBIAN_FRONTEND=noninteractive timeout 900 $$SUDO apt-get -o Acquire::http::Timeout=30 install -y -qq --no-install-recommends chromium) >/dev/null 2>&1 \
				|| echo "note: could not install chromium; the browser test will be skipped"; \
		else echo "note: no root or sudo for apt-get; the browser test will be skipped"; fi; \
	fi; true

test: $(STAMP) browser
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/core.py
	$(PY) benchmarks/epoch_speed.py
	$(PY) benchmarks/report.py

# The AWRSR study (docs/awrsr.md) and the baselines comparison (docs/baselines.md, uses the study's SASRec):
# hours on 2 cores at the default budgets; see each script's --help for smaller ones.
bench-awrsr: $(STAMP)
	$(PY) benchmarks/awrsr_study.py

bench-baselines: $(STAMP)
	$(PY) benchmarks/baselines.py

clean:
	rm -rf $(VENV) runs .pytest_cache
