#!/usr/bin/env bash
# Provide the base image the Dockerfile starts FROM (default python:3.11-slim) on a
# machine that reaches Debian's archive and PyPI but no container registry.
#
#   scripts/docker/stand-in-base-image.sh [TAG]
#
# Idempotent: an image already tagged TAG is reused. Otherwise `docker pull TAG` is
# tried (skip it with TORCHVET_NO_PULL=1); when that fails, a stand-in is built from
# Debian packages with debootstrap and imported under TAG:
#   - python3, pip, venv, ca-certificates and git from Debian bookworm (Python 3.11);
#   - /usr/local/bin/python and pip linked to python3/pip3, EXTERNALLY-MANAGED removed;
#   - this machine's CA bundle (so a TLS-intercepting proxy keeps working) and an
#     /etc/pip.conf using it;
#   - the CPU torch wheel(s) for cp311 found in this machine's pip find-links
#     directories, copied into /opt/wheels and named as pip's find-links there.
#
# Needs root (debootstrap) and a running engine (scripts/docker/ensure-engine.sh).
# Environment: DEBIAN_MIRROR [http://deb.debian.org/debian], DEBIAN_SUITE [bookworm],
# TORCH_WHEEL_DIRS (space-separated directories to take torch wheels from; default:
# pip's find-links), TORCHVET_NO_PULL=1 (do not try the registry).
set -euo pipefail

tag=${1:-python:3.11-slim}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=${DEBIAN_SUITE:-bookworm}

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "stand-in: $tag is already present; reusing it"
  exit 0
fi

if [ "${TORCHVET_NO_PULL:-0}" != 1 ] && timeout 120 docker pull "$tag" >/dev/null 2>&1; then
  echo "stand-in: pulled $tag from the registry"
  exit 0
fi

version=${tag#*:}
version=${version%%-*}
if [ "$suite" = bookworm ] && [ "$version" != 3.11 ]; then
  echo "stand-in: Debian bookworm ships Python 3.11, not $version; set DEBIAN_SUITE to a" \
       "suite with Python $version or build with --build-arg PYTHON_VERSION=3.11" >&2
  exit 2
fi

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/torchvet-rootfs.XXXXXX")
cleanup() { as_root rm -rf "$rootfs"; }
trap cleanup EXIT

echo "stand-in: debootstrap $suite into $rootfs (about a minute)"
as_root debootstrap --variant=minbase \
  --include=python3,python3-pip,python3-venv,ca-certificates,git \
  "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
  tail -n 30 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"

pyver=$(as_root chroot "$rootfs" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
cpver=cp${pyver/./}
as_root rm -f "$rootfs/usr/lib/python$pyver/EXTERNALLY-MANAGED"
as_root ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
as_root ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
as_root install -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"

# The CPU torch wheel(s) this machine's pip already finds locally.
dirs=${TORCH_WHEEL_DIRS:-}
if [ -z "$dirs" ]; then
  dirs=${PIP_FIND_LINKS:-}
  for pip in pip3 pip "python3 -m pip"; do
    if out=$($pip config list 2>/dev/null); then
      dirs="$dirs $(printf '%s\n' "$out" | sed -n "s/^[^=]*find-links='\(.*\)'$/\1/p" | tr '\n' ' ')"
      break
    fi
  done
fi
as_root mkdir -p "$rootfs/opt/wheels"
found=0
seen=" "
for dir in $dirs; do
  dir=${dir#file://}
  [ -d "$dir" ] || continue
  case "$seen" in *" $dir "*) continue ;; esac
  seen="$seen$dir "
  for wheel in "$dir"/torch-*+cpu-"$cpver"-*.whl; do
    [ -f "$wheel" ] || continue
    as_root cp "$wheel" "$rootfs/opt/wheels/"
    echo "stand-in: added $(basename "$wheel") to /opt/wheels"
    found=1
  done
done
[ "$found" = 1 ] || echo "stand-in: no CPU torch wheel for $cpver in pip's find-links; the image build will download torch"

as_root tee "$rootfs/etc/pip.conf" >/dev/null <<CONF
[global]
cert = /etc/ssl/certs/ca-certificates.crt
find-links = /opt/wheels
CONF

# Keep the image small: no package caches or lists.
as_root rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*

echo "stand-in: importing as $tag"
as_root tar -C "$rootfs" -c . | docker import \
  -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'CMD ["python3"]' \
  - "$tag" >/dev/null
echo "stand-in: $tag ready ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
