#!/bin/sh
# Runs as root inside each VM (Vagrant's shell provisioner), with the host's rendered cloud-init
# user-data as $1 (base64). Applies it with cloud-init's NoCloud datasource, as a cloud would at
# first boot: installs docker.io, writes daemon.json and the ovsnet units, starts them.
set -eu
export DEBIAN_FRONTEND=noninteractive

apt-get update -q
apt-get install -y -q --no-install-recommends docker.io cloud-init
# The companion image is not in a registry yet: load the one `container/build.sh` saved.
if [ -f /tmp/ovsnet-image.tar ]; then
  docker load -q -i /tmp/ovsnet-image.tar
  rm -f /tmp/ovsnet-image.tar
fi

seed=/var/lib/cloud/seed/nocloud
mkdir -p "$seed"
printf '%s' "$1" | base64 -d > "$seed/user-data"
printf 'instance-id: ovsnet-%s\nlocal-hostname: %s\n' "$(hostname)" "$(hostname)" > "$seed/meta-data"
# Only the seed above, and hands off the network Vagrant configured.
cat > /etc/cloud/cloud.cfg.d/99-ovsnet-vagrant.cfg <<'CFG'
datasource_list: [NoCloud, None]
network: {config: disabled}
CFG

cloud-init clean --logs
cloud-init init --local
cloud-init init
cloud-init modules --mode=config
cloud-init modules --mode=final
cloud-init status --long
systemctl --no-pager status ovsnet.service ovsnet-init.service || true
