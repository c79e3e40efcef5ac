# Two commands do all the set-up on a fresh machine: `make run` and `make test`. As root they install
# the Debian packages they need (scripts/need-packages); otherwise they stop with the apt-get command.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test lint bench setup docker-images docker-test
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	scripts/need-packages py:ensurepip:python3-venv
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	PIP_CONSTRAINT=constraints.txt $(PY) -m pip install -q -e '.[dev]'
	touch $@

run: setup
	scripts/need-packages bwrap:bubblewrap
	$(VENV)/bin/dgm-grader serve --demo

test: setup
	scripts/need-packages bwrap:bubblewrap chromium:chromium chromedriver:chromium-driver
	$(VENV)/bin/ruff check .
	$(VENV)/bin/dgm-grader metrics inception install
	$(VENV)/bin/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: setup
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

# The sandbox and server images, from the Debian archive and a local wheelhouse (docker/build.sh).
docker-images: setup
	docker/build.sh

# The docker backend and the compose stack on a private Docker engine (root; docker/test.sh).
docker-test: setup
	docker/test.sh
