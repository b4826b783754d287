# Two commands on a fresh machine: `make serve` and `make test` (see README.md).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the end-to-end tests drive for real (installed only when run as root);
# mate-backgrounds: nature photos the natural-image prior is fitted on (scripts/fit_prior.py).
TEST_DEBS := chromium xvfb xdotool imagemagick ngircd nginx libnginx-mod-rtmp mate-backgrounds

.PHONY: serve test install install-test bench eval loadtest soak clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test
	@if [ "$$(id -u)" = 0 ] && [ -n "$(TEST_DEBS)" ] && ! dpkg -s $(TEST_DEBS) >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_DEBS) >/dev/null; fi

serve: install
	$(BIN)/dreamstream serve

test: install-test
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python scripts/bench.py

eval: install-test
	$(BIN)/python scripts/eval_quality.py --live --sheets out/eval

loadtest: install
	$(BIN)/python scripts/loadtest.py

soak: install-test
	$(BIN)/python scripts/soak.py --minutes 60 --out out/soak

clean:
	rm -rf $(VENV) *.egg-info
