#!/usr/bin/env bash
# Installs everything ovsnet's lab, tests and benchmarks need on a fresh Debian 12 machine (root).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # the data plane and its control
  openvswitch-switch openvswitch-ipsec strongswan libstrongswan-standard-plugins
  # charon's vici plugin (PSK rotation loads accepted-only keys through it)
  strongswan-swanctl
  # one real Docker engine per lab host, iptables for its rules, etcd for cluster mode
  docker.io iptables nftables etcd-server etcd-client
  # lab plumbing and measurement
  iproute2 iputils-ping ethtool kmod procps psmisc busybox-static tcpdump iperf3 openssl
  # a real Prometheus (and promtool) scrapes the metrics endpoints in the lab tests
  prometheus
  # validators for rendered configuration
  ignition cloud-init systemd ruby
  # the real-kernel lab
  debootstrap debian-archive-keyring qemu-system-x86 qemu-utils e2fsprogs openssh-client util-linux
  dosfstools mtools
  # Python
  python3 python3-venv python3-dev gcc python3-openvswitch
  # `make dist`'s wheel installed the way a user would (a test does it)
  pipx
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Do not let package scripts start the host's own OVS/Docker/etcd: the lab starts its own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.ovsnet-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi

# PyPI's `ovs` builds its C JSON parser only against libopenvswitch, which Debian does not ship
# as a library; without it the pure-Python parser makes every OVSDB read ~10x slower. Debian's
# python3-openvswitch carries the same module built for Python 3.11: lend it to the venv.
ovs_dir=$(.venv/bin/python -c 'import os, ovs; print(os.path.dirname(ovs.__file__))')
debian_json=$(ls /usr/lib/python3/dist-packages/ovs/_json.cpython-3*.so 2>/dev/null | head -1 || true)
if [ -n "$debian_json" ] && ! .venv/bin/python -c 'import ovs._json' 2>/dev/null; then
  ln -sf "$debian_json" "$ovs_dir/$(basename "$debian_json")"
  .venv/bin/python -c 'import ovs._json' || rm -f "$ovs_dir/$(basename "$debian_json")"
fi
# `ovsnet` on root's PATH, where `ovsnet render host-unit` units (and the VM lab) expect it.
# Never replace an ovsnet installed some other way.
if [ ! -e /usr/local/bin/ovsnet ] && [ ! -L /usr/local/bin/ovsnet ]; then
  ln -s "$PWD/.venv/bin/ovsnet" /usr/local/bin/ovsnet
fi
echo "setup: ready (.venv/bin/ovsnet, linked from /usr/local/bin/ovsnet)"
