#!/usr/bin/env bash
# Network-face benchmark: `fvfsc cat` / `fvfsc put` of one big file over loopback (MB/s), and
# small-file put/get per second with `fvfsc` (one process per file, as a shell loop would
# use it) and through `fvfsc mount`, each against the same operation through the daemon's
# own local FUSE mount. One `fvfsd serve` (API + workers + mount) on the S3 test server.
# Needs root (FUSE, drop_caches).
#   bench/api.sh [SIZE_MIB] [SMALL_FILES]   # default 512 and 300; FVFS_PROFILE=release
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SIZE_MIB="${1:-512}"
N="${2:-300}"
PROFILE="${FVFS_PROFILE:-debug}"
[[ $(id -u) -eq 0 ]] || { echo "bench/api.sh needs root" >&2; exit 1; }
if [[ $PROFILE == release ]]; then cargo build -q --release --bins; else cargo build -q --bins; fi
BIN="$(pwd)/target/$PROFILE"
W="$(mktemp -d /var/tmp/fvfs-bench-api.XXXXXX)"
chmod 755 "$W"
S3PID="" SERVEPID="" CLIENTPID=""
cleanup() {
	umount "$W/cmnt" 2>/dev/null || umount -l "$W/cmnt" 2>/dev/null || true
	[[ -n $CLIENTPID ]] && kill "$CLIENTPID" 2>/dev/null || true
	[[ -n $SERVEPID ]] && kill -TERM "$SERVEPID" 2>/dev/null && wait "$SERVEPID" 2>/dev/null || true
	umount "$W/mnt" 2>/dev/null || umount -l "$W/mnt" 2>/dev/null || true
	[[ -n $S3PID ]] && kill "$S3PID" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT
unset AWS_CA_BUNDLE
export AWS_ACCESS_KEY_ID=fvfs-bench AWS_SECRET_ACCESS_KEY=fvfs-bench-secret AWS_REGION=us-east-1
mkdir -p "$W/mnt" "$W/cmnt" "$W/s3" "$W/small"
"$BIN/fvfs-s3-server" --root "$W/s3" --bucket fvfs --port 0 \
	--access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" >"$W/s3.out" 2>"$W/s3.log" &
S3PID=$!
for _ in $(seq 100); do grep -q endpoint= "$W/s3.out" && break; sleep 0.1; done
EP=$(grep -o 'endpoint=[^ ]*' "$W/s3.out" | cut -d= -f2)
META="sqlite://$W/meta.db"
printf '[daemon]\nmount_path = "%s"\nmdns = false\n' "$W/mnt" >"$W/fvfs.toml"
"$BIN/fvfsd" format --meta "$META" --storage "s3://fvfs/bench?endpoint=$EP&region=us-east-1&path_style=true" >/dev/null
FVFS_CONFIG="$W/fvfs.toml" RUST_LOG=warn "$BIN/fvfsd" serve --meta "$META" --port 0 >"$W/serve.out" 2>"$W/serve.log" &
SERVEPID=$!
for _ in $(seq 600); do grep -q '^api ' "$W/serve.out" && break; sleep 0.1; done
export FVFSD_URL
FVFSD_URL="$(grep '^api ' "$W/serve.out" | head -1 | cut -d' ' -f2)"
export FVFS_TOKEN
FVFS_TOKEN="$(tr -d '[:space:]' <"$W/admin.token")"
export FVFSC_CONFIG_DIR="$W/fvfsc-config"
for _ in $(seq 600); do findmnt -n "$W/mnt" >/dev/null && break; sleep 0.1; done
FVFSC="$BIN/fvfsc"

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{print b-a}'; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1048576 / s }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
BYTES=$((SIZE_MIB << 20))

head -c "$BYTES" /dev/urandom >"$W/src"
for i in $(seq "$N"); do head -c 4096 /dev/urandom >"$W/small/$i"; done

# Big file: fvfsc put, fvfsc cat (daemon's cache warm, then dropped) vs the local mount.
t0=$(now); "$FVFSC" put "$W/src" /big-api >/dev/null; t1=$(now)
put_api=$(mbps "$BYTES" "$(secs "$t0" "$t1")")
t0=$(now); dd if="$W/src" of="$W/mnt/big-local" bs=1M conv=fsync status=none; t1=$(now)
put_local=$(mbps "$BYTES" "$(secs "$t0" "$t1")")
drop
t0=$(now); "$FVFSC" cat /big-api >/dev/null; t1=$(now)
cat_api=$(mbps "$BYTES" "$(secs "$t0" "$t1")")
drop
t0=$(now); dd if="$W/mnt/big-local" of=/dev/null bs=1M status=none; t1=$(now)
cat_local=$(mbps "$BYTES" "$(secs "$t0" "$t1")")
cmp <("$FVFSC" cat /big-api) "$W/src" || { echo "fvfsc cat returned other bytes" >&2; exit 1; }

# Small files: fvfsc put/cat (a process each) vs cp/cat through the local mount.
"$FVFSC" mkdir /small-api >/dev/null
mkdir "$W/mnt/small-local"
t0=$(now); for i in $(seq "$N"); do "$FVFSC" put "$W/small/$i" "/small-api/$i" >/dev/null; done; t1=$(now)
sput_api=$(rate "$N" "$(secs "$t0" "$t1")")
t0=$(now); for i in $(seq "$N"); do cp "$W/small/$i" "$W/mnt/small-local/$i"; done; t1=$(now)
sput_local=$(rate "$N" "$(secs "$t0" "$t1")")
drop
t0=$(now); for i in $(seq "$N"); do "$FVFSC" cat "/small-api/$i" >/dev/null; done; t1=$(now)
sget_api=$(rate "$N" "$(secs "$t0" "$t1")")
drop
t0=$(now); for i in $(seq "$N"); do cat "$W/mnt/small-local/$i" >/dev/null; done; t1=$(now)
sget_local=$(rate "$N" "$(secs "$t0" "$t1")")

# The same small files through `fvfsc mount` (one client process, FUSE on the client side).
"$FVFSC" mount --foreground --cache-dir "$W/ccache" "$W/cmnt" >"$W/client.log" 2>&1 &
CLIENTPID=$!
for _ in $(seq 600); do findmnt -n "$W/cmnt" >/dev/null && break; sleep 0.1; done
mkdir "$W/cmnt/small-cm"
t0=$(now); for i in $(seq "$N"); do cp "$W/small/$i" "$W/cmnt/small-cm/$i"; done; t1=$(now)
sput_cm=$(rate "$N" "$(secs "$t0" "$t1")")
drop
t0=$(now); for i in $(seq "$N"); do cat "$W/cmnt/small-cm/$i" >/dev/null; done; t1=$(now)
sget_cm=$(rate "$N" "$(secs "$t0" "$t1")")
drop
t0=$(now); dd if="$W/cmnt/big-api" of=/dev/null bs=1M status=none; t1=$(now)
cat_cm=$(mbps "$BYTES" "$(secs "$t0" "$t1")")

echo "profile=$PROFILE size=${SIZE_MIB}MiB small_files=$N x 4KiB"
printf '%-34s %10s %10s\n' "" "fvfsc/API" "local mount"
printf '%-34s %10s %10s\n' "big put (MB/s)" "$put_api" "$put_local"
printf '%-34s %10s %10s\n' "big cat, caches dropped (MB/s)" "$cat_api" "$cat_local"
printf '%-34s %10s %10s\n' "small put (files/s)" "$sput_api" "$sput_local"
printf '%-34s %10s %10s\n' "small get (files/s)" "$sget_api" "$sget_local"
printf '%-34s %10s\n' "fvfsc mount: small put (files/s)" "$sput_cm"
printf '%-34s %10s\n' "fvfsc mount: small get (files/s)" "$sget_cm"
printf '%-34s %10s\n' "fvfsc mount: big read (MB/s)" "$cat_cm"
