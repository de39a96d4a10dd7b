"""Where things live on a rendered host (pure constants): unit and file names, paths, binaries.

The templates, the validators and the tests all name a unit or a path through these, so a
rendered file and the check of it cannot disagree.
"""

# The companion container and the paths it shares with the host (image built from container/).
COMPANION_NAME = "ovsnet"
OVS_DB_VOLUME = "ovsnet-openvswitch"
# What the companion is granted instead of --privileged: every other capability is dropped.
# Each reason names what inside the container needs it (docs/security.md, "The companion").
COMPANION_CAPABILITIES = {
    "NET_ADMIN": "netlink: OVS datapath and links, strongSwan's xfrm SAs, nftables guard",
    "NET_RAW": "packet sockets: gratuitous ARP for the moved gateway; strongSwan's connmark",
    "NET_BIND_SERVICE": "strongSwan binds IKE's UDP port 500 (and 4500)",
}
# Kernel modules the data plane needs. Without CAP_SYS_MODULE the container cannot load them:
# the companion unit loads them on the host before it starts the container.
DATAPATH_MODULES = ("openvswitch", "ip_gre")  # the kernel datapath and its GRE tunnels
IPSEC_MODULES = ("esp4", "xfrm_user")  # ESP transport mode, configured over xfrm netlink
# Keys, certificates and PSK files for IPsec are provisioned out of band by default (user-data
# is shown to anyone with read access to the instance); --ipsec-psk-embed / --ipsec-pki-embed
# put them in user-data instead, at these paths (the companion mounts the folder read-only).
IPSEC_CONFIG_DIR = "/etc/ovsnet"
IPSEC_PSK_PATH = f"{IPSEC_CONFIG_DIR}/ipsec.psk"
IPSEC_CERT_PATH = f"{IPSEC_CONFIG_DIR}/ipsec-cert.pem"
IPSEC_KEY_PATH = f"{IPSEC_CONFIG_DIR}/ipsec-key.pem"
IPSEC_CA_PATH = f"{IPSEC_CONFIG_DIR}/ipsec-ca.pem"

# Host binaries the units call. Both exist at these paths on Flatcar, Fedora CoreOS, Debian and
# Ubuntu (merged /usr), and `systemd-analyze verify` checks that they exist.
DOCKER = "/usr/bin/docker"
MODPROBE = "/usr/sbin/modprobe"

DOCKER_DROPIN_NAME = "50-ovsnet-bridge.conf"
VSWITCHD_UNIT = "ovs-vswitchd.service"  # Debian's and Ubuntu's openvswitch-switch
VSWITCHD_DROPIN_NAME = "50-ovsnet-guard.conf"
COMPANION_UNIT = "ovsnet.service"
INIT_UNIT = "ovsnet-init.service"
AGENT_UNIT = "ovsnet-agent.service"
# OVSNET_ETCD, OVSNET_ETCD_CERT, OVSNET_ETCD_KEY, OVSNET_ETCD_CA for the agent: paths and a URL,
# kept out of the rendered unit so one rendering serves every etcd setup.
AGENT_ENV_FILE = "/etc/ovsnet/agent.env"
HEAL_UNIT = "ovsnet-ipsec-heal.service"
GUARD_WATCH_UNIT = "ovsnet-guard-watch.service"
# Where `pip install ovsnet` as root (and the lab VMs' image) put the command.
OVSNET = "/usr/local/bin/ovsnet"

# Docker's remote API over mutual TLS (--docker-tls). The port is Docker's registered TLS port.
DOCKER_TLS_LISTEN = "0.0.0.0:2376"
DEFAULT_DOCKER_TLS_DIR = "/etc/docker/tls"
# The names `ovsnet pki issue-docker` writes in docker/HOST/server/: copy that folder as is.
DOCKER_TLS_FILES = {"tlscacert": "ca.pem", "tlscert": "cert.pem", "tlskey": "key.pem"}
DOCKER_TLS_SOCKET_UNIT = "ovsnet-docker-tls.socket"
