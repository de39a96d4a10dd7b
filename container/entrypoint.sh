#!/bin/sh
# The companion container's entrypoint: load the kernel modules this host's datapath needs (when
# the host lets us: /lib/modules is mounted read-only), then hand over to `ovsnet supervise`,
# which starts the OVS daemons and stays in the foreground. Configuration: container/README.md.
set -eu

load_module() {
  [ -d "/sys/module/$1" ] && return 0
  modprobe "$1" 2>/dev/null && return 0
  echo "ovsnet-entrypoint: kernel module $1 is not available${2:+ ($2)}" >&2
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
