#!/usr/bin/env bash
# Make a Docker engine available on this machine; safe to run again and again.
#
#   1. install docker.io and debootstrap with apt when they are missing;
#   2. start `dockerd --bridge=none --iptables=false` in the background unless an engine
#      already answers (no bridge network: run containers with --network host or none);
#   3. wait until `docker info` answers.
#
# Needs root (or password-less sudo). Environment:
#   DOCKERD_LOG      where dockerd writes its log  [/var/log/torchvet-dockerd.log]
#   DOCKERD_WAIT     seconds to wait for the engine [90]
set -euo pipefail

log=${DOCKERD_LOG:-/var/log/torchvet-dockerd.log}
wait_s=${DOCKERD_WAIT:-90}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
    echo "ensure-engine: '$*' needs root and sudo is not available" >&2; return 1; fi
}

if docker info >/dev/null 2>&1; then
  echo "ensure-engine: a Docker engine is already running ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
  exit 0
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "ensure-engine: installing ${missing[*]} with apt"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "ensure-engine: starting dockerd (log: $log)"
  as_root mkdir -p "$(dirname "$log")"
  # setsid + nohup: the engine outlives this script and the shell that ran it.
  as_root setsid nohup dockerd --bridge=none --iptables=false >"$log" 2>&1 < /dev/null &
fi

for _ in $(seq 1 "$wait_s"); do
  if docker info >/dev/null 2>&1; then
    echo "ensure-engine: engine ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    exit 0
  fi
  sleep 1
done
echo "ensure-engine: the Docker engine did not answer within ${wait_s}s; last lines of $log:" >&2
tail -n 40 "$log" >&2 2>/dev/null || true
exit 1
