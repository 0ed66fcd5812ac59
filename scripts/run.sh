#!/usr/bin/env bash
# The main job: `fvfsd serve` on the embedded default (SQLite + a local block directory
# under ~/.local/share/fvfs, mounted at ~/fvfs; formatted on first run, which also makes
# the admin token), with the HTTP API on :7734 (loopback-only until a token exists), the
# Unix control socket and mDNS. It checks for fuse3 first and installs it with apt-get
# when missing and running as root.
#   scripts/run.sh [--config FILE]     # any fvfsd global flag may follow
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ ! -c /dev/fuse ]]; then
	echo "fvfs: /dev/fuse is missing: load the fuse module (modprobe fuse)" >&2
	exit 1
fi
if [[ $(id -u) -ne 0 ]] && ! command -v fusermount3 >/dev/null; then
	echo "fvfs: fusermount3 is missing; install it with: sudo apt-get install fuse3" >&2
	exit 1
fi
if ! command -v fusermount3 >/dev/null && command -v apt-get >/dev/null; then
	echo "fvfs: installing fuse3 (for fusermount3 and umount helpers)"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null
fi
exec cargo run --release -q -p fvfsd -- "$@" serve
