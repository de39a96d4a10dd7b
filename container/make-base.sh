#!/usr/bin/env bash
# Makes the companion image's base offline-buildable: a minimal Debian 12 root (debootstrap)
# with every package the image needs already installed, imported with `docker import`.
#
#   container/make-base.sh [--tag ovsnet-base:bookworm] [--mirror URL] [--cache-dir DIR]
#
# The root file system is cached as a tarball in the cache dir, keyed by this script's hash, so
# a second run only imports it (or does nothing when the image is already there). Talks to the
# Docker engine named by DOCKER_HOST (default: the local one). Needs root and the Debian mirror.
set -euo pipefail

TAG=ovsnet-base:bookworm
MIRROR=""
CACHE_DIR=${OVSNET_CACHE_DIR:-/var/cache/ovsnet}
SUITE=bookworm
# Everything the Dockerfile would otherwise apt-get: keep in step with its PACKAGES.
PACKAGES=(
  openvswitch-switch openvswitch-ipsec strongswan libstrongswan-standard-plugins
  python3 python3-venv tini iproute2 iptables nftables kmod
)

while [ $# -gt 0 ]; do
  case $1 in
    --tag) TAG=$2; shift 2 ;;
    --mirror) MIRROR=$2; shift 2 ;;
    --cache-dir) CACHE_DIR=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "make-base: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# The host's own Debian mirror: the one apt already uses (deb822 or one-line sources).
host_mirror() {
  local uri
  uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
          /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ')
  echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR=${MIRROR:-$(host_mirror)}

DOCKER=${DOCKER:-docker}
KEY=$( (cat "$0"; echo "$MIRROR") | sha256sum | cut -c1-16)
TARBALL=$CACHE_DIR/ovsnet-base-$SUITE-$KEY.tar

if [ "$($DOCKER image inspect -f '{{index .Config.Labels "ovsnet.base-key"}}' "$TAG" 2>/dev/null)" = "$KEY" ]; then
  echo "make-base: $TAG is up to date ($KEY)"
  exit 0
fi

if [ ! -s "$TARBALL" ]; then
  mkdir -p "$CACHE_DIR"
  ROOT=$(mktemp -d /var/tmp/ovsnet-base.XXXXXX)
  cleanup() {
    # debootstrap mounts /proc and /sys in the target; never leave a mount behind.
    for m in proc sys dev/pts; do
      mountpoint -q "$ROOT/$m" 2>/dev/null && umount -l "$ROOT/$m"
    done
    rm -rf --one-file-system "$ROOT" "$TARBALL.tmp"
  }
  trap cleanup EXIT
  echo "make-base: debootstrap $SUITE from $MIRROR (a few minutes)"
  include=$(IFS=,; echo "${PACKAGES[*]}")
  nice -n 10 debootstrap --variant=minbase --include="$include" "$SUITE" "$ROOT" "$MIRROR" \
    > "$CACHE_DIR/debootstrap.log" 2>&1 \
    || { tail -n 20 "$CACHE_DIR/debootstrap.log" >&2; exit 1; }
  # Slim the root: package caches and lists are rebuilt by `apt-get update` when needed.
  rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* \
         "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* "$ROOT"/usr/share/locale/* \
         "$ROOT"/var/log/*.log "$ROOT"/var/cache/debconf/*-old
  find "$ROOT/usr/share/doc" -type f ! -name copyright -delete 2>/dev/null || true
  # Point apt at the same mirror, as the public debian:12 image does.
  printf 'deb %s %s main\ndeb %s %s-updates main\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" \
    > "$ROOT/etc/apt/sources.list"
  rm -f "$ROOT/usr/sbin/policy-rc.d"
  nice -n 10 tar --numeric-owner --xattrs -C "$ROOT" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
  # Keep only this key's tarball: older ones are dead weight.
  find "$CACHE_DIR" -maxdepth 1 -name "ovsnet-base-$SUITE-*.tar" ! -name "$(basename "$TARBALL")" -delete
fi

echo "make-base: importing $TARBALL as $TAG"
$DOCKER import \
  --change "LABEL ovsnet.base-key=$KEY" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  "$TARBALL" "$TAG" > /dev/null
echo "make-base: $TAG ready ($KEY)"
