# The two commands of the README are `make demo` and `make test`; both set up what they need.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-vm-extended unit lint bench bench-vm render-examples image clean man dist

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/ovsnet lab demo --hosts 3

# CI's run is reproducible: Hypothesis's own "ci" profile seeds each property test from its
# name, so a landing never depends on the examples one random run happened to draw.
# --durations: the slowest tests in every CI log, to keep the run inside its time budget.
# The VM scenarios marked vm_extended (the shared host-unit lab: plain GRE, the guard's faults,
# rotation, certificates, the host-unit reboot; about 50 minutes of emulation) run in
# `make test-vm-extended`, not here: CI's budget. The user-data fleets run here.
test: setup
	$(PY) -m pytest -q --hypothesis-profile=ci --durations=40 -m "not vm_extended"

test-vm-extended: setup
	$(PY) -m pytest -q -m vm_extended tests/vm --durations=20

unit: setup
	$(PY) -m pytest -q -m "not lab and not vm"

# ruff (lint and format), then mypy (strict on the pure modules, mypy's defaults elsewhere: pyproject.toml).
lint: setup
	$(VENV)/bin/ruff check ovsnet tests bench
	$(VENV)/bin/ruff format --check ovsnet tests bench
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m bench

# Data plane in the real-kernel lab (3 qemu VMs, emulated CPU): underlay vs GRE vs IPsec.
bench-vm: setup
	$(PY) -m bench.vm

render-examples: setup
	$(VENV)/bin/ovsnet render-examples cloud-config

# The man page is generated from the CLI; a unit test checks the committed copy is fresh.
man: setup
	$(VENV)/bin/ovsnet man -o docs/man/ovsnet.1

# The wheel and sdist a user installs (`pipx install dist/ovsnet-*.whl`), checked by twine.
dist: setup
	rm -rf dist/ovsnet-*.whl dist/ovsnet-*.tar.gz
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/ovsnet-*.whl dist/ovsnet-*.tar.gz

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info

# The companion image, and the same image as dist/ovsnet-image-VERSION.tar.gz for hosts without a
# registry (`docker load --input FILE`; `ovsnet render --image-tarball PATH` renders units that do).
IMAGE_TARBALL = dist/ovsnet-image-$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml).tar.gz

image: setup
	bash container/build.sh --save $(IMAGE_TARBALL)
