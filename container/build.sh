#!/usr/bin/env bash
# Builds the ovsnet companion image from this checkout.
#
#   container/build.sh [--tag REF] [--base IMAGE] [--save FILE]
#
#   --tag   image reference (default: the one `ovsnet render` points at, ovsnet.render.DEFAULT_IMAGE)
#   --base  base image: ovsnet-base:bookworm (default; made offline by make-base.sh when missing)
#           or debian:12 (the public image; the Dockerfile then installs the packages with apt)
#   --save  also write the image to FILE with `docker save` (gzip-compressed when FILE ends in .gz;
#           a host without a registry then runs `docker load --input FILE`)
#
# The build context holds the ovsnet wheel built from this checkout and its dependencies' wheels
# (downloaded from PyPI once, cached by the hash of pyproject.toml), so the image build itself
# needs no network. Talks to the Docker engine named by DOCKER_HOST; uses the classic builder.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
BASE=ovsnet-base:bookworm
TAG=""
SAVE=""
CACHE_DIR=${OVSNET_CACHE_DIR:-/var/cache/ovsnet}
DOCKER=${DOCKER:-docker}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
IMAGE_PYTHON=3.11  # Debian 12's: the wheels must suit the image's interpreter

while [ $# -gt 0 ]; do
  case $1 in
    --tag) TAG=$2; shift 2 ;;
    --base) BASE=$2; shift 2 ;;
    --save) SAVE=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "build: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

have=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$have" != "$IMAGE_PYTHON" ]; then
  echo "build: the wheels must be built with Python $IMAGE_PYTHON (the image's), $PYTHON is $have;" \
       "pass PYTHON=/path/to/python$IMAGE_PYTHON" >&2
  exit 2
fi
# One constant names the image for both `ovsnet render` and this build.
TAG=${TAG:-$(cd "$REPO" && "$PYTHON" -c 'from ovsnet.render import DEFAULT_IMAGE; print(DEFAULT_IMAGE)')}

if [ "$BASE" = ovsnet-base:bookworm ]; then
  DOCKER=$DOCKER OVSNET_CACHE_DIR=$CACHE_DIR "$HERE/make-base.sh" --tag "$BASE"
fi

CONTEXT=$(mktemp -d /var/tmp/ovsnet-build.XXXXXX)
trap 'rm -rf "$CONTEXT"' EXIT
mkdir -p "$CONTEXT/wheels" "$CONTEXT/src"

# The wheel is built from a copy holding only what the package needs (not .venv, not tests).
cp -r "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/ovsnet" "$CONTEXT/src/"
find "$CONTEXT/src" -name __pycache__ -prune -exec rm -rf {} +

DEPS=$CACHE_DIR/wheels-$(cat "$REPO/pyproject.toml" | sha256sum | cut -c1-16)
if [ ! -d "$DEPS" ]; then
  echo "build: collecting dependency wheels into $DEPS"
  mkdir -p "$CACHE_DIR"
  rm -rf "$DEPS.tmp"
  nice -n 10 "$PYTHON" -m pip wheel -q --wheel-dir "$DEPS.tmp" "$CONTEXT/src" \
    > "$CONTEXT/pip.log" 2>&1 || { tail -n 20 "$CONTEXT/pip.log" >&2; exit 1; }
  rm -f "$DEPS.tmp"/ovsnet-*.whl
  mv "$DEPS.tmp" "$DEPS"
fi
cp "$DEPS"/*.whl "$CONTEXT/wheels/"
nice -n 10 "$PYTHON" -m pip wheel -q --no-deps --wheel-dir "$CONTEXT/wheels" "$CONTEXT/src" \
  > "$CONTEXT/pip.log" 2>&1 || { tail -n 20 "$CONTEXT/pip.log" >&2; exit 1; }
rm -f "$CONTEXT/pip.log"
rm -rf "$CONTEXT/src"
cp "$HERE/Dockerfile" "$HERE/entrypoint.sh" "$CONTEXT/"

echo "build: building $TAG on $BASE"
DOCKER_BUILDKIT=0 nice -n 10 $DOCKER build -q --build-arg "BASE=$BASE" \
  --label "org.opencontainers.image.source=https://github.com/ovsnet/ovsnet" \
  --label "org.opencontainers.image.version=$TAG" \
  -t "$TAG" "$CONTEXT" > /dev/null
echo "build: $TAG ready ($($DOCKER image inspect -f '{{.Size}}' "$TAG") bytes)"

if [ -n "$SAVE" ]; then
  mkdir -p "$(dirname "$SAVE")"
  case $SAVE in
    *.gz) $DOCKER save "$TAG" | gzip -c > "$SAVE.tmp" ;;
    *) $DOCKER save -o "$SAVE.tmp" "$TAG" ;;
  esac
  mv "$SAVE.tmp" "$SAVE"
  echo "build: saved $TAG to $SAVE (docker load --input $SAVE)"
fi
