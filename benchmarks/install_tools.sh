#!/usr/bin/env bash
# Install the load generator the HTTP benchmark drives (wrk, a Debian package); `make bench` runs this.
# Idempotent: does nothing when wrk is already on PATH. Uses sudo when not root, if sudo exists.
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "wrk is not installed and apt-get is missing: install wrk with your package manager" >&2
    echo "(e.g. 'brew install wrk' on macOS) and run make bench again." >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "wrk is not installed and installing it needs root: run 'apt-get update && apt-get install -y wrk'" >&2
    echo "as root (no sudo here), then make bench again." >&2
    exit 1
fi

echo "installing wrk (apt-get) ..."
"${as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq wrk >/dev/null
wrk --version 2>&1 | head -1 || true
