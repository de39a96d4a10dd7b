#!/usr/bin/env bash
# Builds (once) and caches the Debian 12 VM image of the real-kernel lab; prints its metadata.
# Cache: $OVSNET_VMLAB_CACHE (default /var/cache/ovsnet-vmlab), keyed by the image's apt package
# list, ovsnet's Python dependencies, the recipe version and the lab's ssh key (ovsnet/vmlab/).
# Needs root, debootstrap, e2fsprogs and access to the host's Debian mirror; about 2 minutes cold.
set -euo pipefail
cd "$(dirname "$0")/.."
exec nice -n 10 .venv/bin/python -m ovsnet.vmlab.image "$@"
