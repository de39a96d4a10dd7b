"""The companion container: OVS daemons, ovs-monitor-ipsec and ovsnet's self-healing supervisor
(`ovsnet supervise`, the container's foreground process; see container/README.md).

Place: docs/architecture.md, "Packages and what they own":
the companion container's supervisor (a service).
"""
