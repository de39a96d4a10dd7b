"""ovsnet benchmarks: control plane against the per-peer ovs-vsctl loop, data plane in the lab.

Run `make bench` or `python -m bench` (root: it creates network namespaces). See bench/README.md.
"""
