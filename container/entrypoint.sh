#!/bin/sh
# The companion container's entrypoint: check the kernel modules this host's datapath needs are
# there, loading them if the container may (run with CAP_SYS_MODULE; the rendered unit does not
# grant it and loads them on the host first), then hand over to `ovsnet supervise`, which starts
# the OVS daemons and stays in the foreground. Configuration: container/README.md.
set -eu

load_module() {
  [ -d "/sys/module/$1" ] && return 0
  modprobe "$1" 2>/dev/null && return 0
  echo "ovsnet-entrypoint: kernel module $1 is not loaded${2:+ ($2)}: load it on the host (modprobe $1)" >&2
}

truthy() {
  case "${1:-}" in 1|y|yes|true|on) return 0 ;; *) return 1 ;; esac
}

if [ "${OVSNET_DATAPATH:-system}" = system ]; then
  load_module openvswitch "the kernel datapath needs it; OVSNET_DATAPATH=netdev runs without it"
fi
if truthy "${OVSNET_IPSEC:-}"; then
  # ESP in transport mode, configured by strongSwan over XFRM netlink.
  for module in esp4 xfrm_user; do load_module "$module" "IPsec needs it"; done
fi

exec ovsnet supervise "$@"
