#!/usr/bin/env bash
# Network-face benchmark: `fvfsc cat` / `fvfsc put` of one big file over loopback (MB/s), and
# small-file put/get per second with `fvfsc` (one process per file, as a shell loop would
# use it) and through `fvfsc mount`, each against the same operation through the daemon's
# own local FUSE mount. One `fvfsd serve` (API + workers + mount) on the S3 test server.
# Needs root (FUSE, drop_caches).
#   bench/api.sh [SIZE_MIB] [SMALL_FILES]   # default 512 and 300; FVFS_PROFILE=release
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
SIZE_MIB="${1:-512}"
N="${2:-300}"
[[ $(id -u) -eq 0 ]] || fvfs_die "bench/api.sh needs root (FUSE, drop_caches)"
fvfs_build_bins
trap fvfs_teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fvfs_mktemp bench-api
fvfs_start_s3
fvfs_format --storage "$(fvfs_s3_location bench)" >/dev/null
LOCAL="$FVFS_WORK/mnt"
FVFS_SERVE_MOUNT="$LOCAL" fvfs_serve
export FVFSC_CONFIG_DIR="$FVFS_WORK/fvfsc-config"
FVFSC="$(fvfs_bin_dir)/fvfsc"

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{print b-a}'; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1048576 / s }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
BYTES=$((SIZE_MIB << 20))

mkdir -p "$FVFS_WORK/small"
head -c "$BYTES" /dev/urandom >"$FVFS_WORK/src"
for i in $(seq "$N"); do head -c 4096 /dev/urandom >"$FVFS_WORK/small/$i"; done

# Big file: fvfsc put, fvfsc cat (daemon's cache warm, page cache dropped) vs the local mount.
t0=$(now); "$FVFSC" put "$FVFS_WORK/src" /big-api >/dev/null; t1=$(now)
put_api=$(mbps "$BYTES" "$(secs "$t0" "$t1")")
t0=$(now); dd if="$FVFS_WORK/src" of="$LOCAL/big-local" bs=1M conv=fsync status=none; t1=$(now)
put_local=$(mbps "$BYTES" "$(secs "$t0" "$t1")")
drop
t0=$(now); "$FVFSC" cat /big-api >/dev/null; t1=$(now)
cat_api=$(mbps "$BYTES" "$(secs "$t0" "$t1")")
drop
t0=$(now); dd if="$LOCAL/big-local" of=/dev/null bs=1M status=none; t1=$(now)
cat_local=$(mbps "$BYTES" "$(secs "$t0" "$t1")")
cmp <("$FVFSC" cat /big-api) "$FVFS_WORK/src" || fvfs_die "fvfsc cat returned other bytes"

# Small files: fvfsc put/cat (a process each) vs cp/cat through the local mount.
"$FVFSC" mkdir /small-api >/dev/null
mkdir "$LOCAL/small-local"
t0=$(now); for i in $(seq "$N"); do "$FVFSC" put "$FVFS_WORK/small/$i" "/small-api/$i" >/dev/null; done; t1=$(now)
sput_api=$(rate "$N" "$(secs "$t0" "$t1")")
t0=$(now); for i in $(seq "$N"); do cp "$FVFS_WORK/small/$i" "$LOCAL/small-local/$i"; done; t1=$(now)
sput_local=$(rate "$N" "$(secs "$t0" "$t1")")
drop
t0=$(now); for i in $(seq "$N"); do "$FVFSC" cat "/small-api/$i" >/dev/null; done; t1=$(now)
sget_api=$(rate "$N" "$(secs "$t0" "$t1")")
drop
t0=$(now); for i in $(seq "$N"); do cat "$LOCAL/small-local/$i" >/dev/null; done; t1=$(now)
sget_local=$(rate "$N" "$(secs "$t0" "$t1")")

# The same small files through `fvfsc mount` (one client process, FUSE on the client side).
fvfs_client_mount "$FVFS_WORK/cmnt"
CM="$FVFS_CLIENT_MNT"
mkdir "$CM/small-cm"
t0=$(now); for i in $(seq "$N"); do cp "$FVFS_WORK/small/$i" "$CM/small-cm/$i"; done; t1=$(now)
sput_cm=$(rate "$N" "$(secs "$t0" "$t1")")
drop
t0=$(now); for i in $(seq "$N"); do cat "$CM/small-cm/$i" >/dev/null; done; t1=$(now)
sget_cm=$(rate "$N" "$(secs "$t0" "$t1")")
drop
t0=$(now); dd if="$CM/big-api" of=/dev/null bs=1M status=none; t1=$(now)
cat_cm=$(mbps "$BYTES" "$(secs "$t0" "$t1")")

echo "profile=${FVFS_PROFILE:-debug} size=${SIZE_MIB}MiB small_files=$N x 4KiB"
printf '%-34s %10s %10s\n' "" "fvfsc/API" "local mount"
printf '%-34s %10s %10s\n' "big put (MB/s)" "$put_api" "$put_local"
printf '%-34s %10s %10s\n' "big cat, caches dropped (MB/s)" "$cat_api" "$cat_local"
printf '%-34s %10s %10s\n' "small put (files/s)" "$sput_api" "$sput_local"
printf '%-34s %10s %10s\n' "small get (files/s)" "$sget_api" "$sget_local"
printf '%-34s %10s\n' "fvfsc mount: small put (files/s)" "$sput_cm"
printf '%-34s %10s\n' "fvfsc mount: small get (files/s)" "$sget_cm"
printf '%-34s %10s\n' "fvfsc mount: big read (MB/s)" "$cat_cm"
