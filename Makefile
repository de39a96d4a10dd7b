# The two commands of the README are `make demo` and `make test`; both set up what they need.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test unit lint bench bench-vm render-examples image clean

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/ovsnet lab demo --hosts 3

test: setup
	$(PY) -m pytest -q

unit: setup
	$(PY) -m pytest -q -m "not lab and not vm"

# ruff, then mypy (strict on the pure modules, mypy's defaults elsewhere: pyproject.toml).
lint: setup
	$(VENV)/bin/ruff check ovsnet tests bench
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m bench

# Data plane in the real-kernel lab (3 qemu VMs, emulated CPU): underlay vs GRE vs IPsec.
bench-vm: setup
	$(PY) -m bench.vm

render-examples: setup
	$(VENV)/bin/ovsnet render-examples cloud-config

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

image: setup
	bash container/build.sh
