"""The companion container: OVS daemons, ovs-monitor-ipsec and ovsnet's self-healing supervisor
(`ovsnet supervise`, the container's foreground process; see container/README.md)."""
