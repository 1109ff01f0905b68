#!/usr/bin/env bash
# Installs the Debian packages some tests use, and only those: Go modules and
# Go tools come from the Makefile. Without apt-get (or the right to use it)
# it warns and exits 0: the tests that need a package skip when it is absent.
#
#   scripts/install-deps.sh            kcat (a Kafka client that is not ours),
#                                      docker-compose (checks docker-compose.redpanda.yml)
#                                      and prometheus (promtool checks the metrics)
#   scripts/install-deps.sh --browser  those and chromium (console browser tests)
set -euo pipefail

packages=(kcat docker-compose prometheus)
if [ "${1:-}" = "--browser" ]; then
  packages+=(chromium)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg -s "$p" >/dev/null 2>&1; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: apt-get not found; install ${missing[*]} yourself (tests that need them skip)" >&2
  exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    echo "install-deps: not root and no password-less sudo; install ${missing[*]} yourself (tests that need them skip)" >&2
    exit 0
  fi
fi

log=$(mktemp -t install-deps.XXXXXX)
echo "install-deps: installing ${missing[*]} (log: $log)"
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
  # The package lists may be missing or stale on a fresh machine.
  if ! { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; } >>"$log" 2>&1; then
    echo "install-deps: could not install ${missing[*]} (see $log); tests that need them skip" >&2
    exit 0
  fi
fi
echo "install-deps: done"
