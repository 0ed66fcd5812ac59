#!/usr/bin/env bash
# Tier benchmark: read throughput of one big file from each tier (hot local dir, warm
# "NAS" dir, cold S3 on loopback; page cache dropped, no local block cache, no
# promotion), and replication throughput to the S3 tier. Needs root (drop_caches, mount).
#   bench/tiers.sh [SIZE_MIB]          # default 512; FVFS_PROFILE=release for release binaries
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SIZE_MIB="${1:-512}"
PROFILE="${FVFS_PROFILE:-debug}"
[[ $(id -u) -eq 0 ]] || { echo "bench/tiers.sh needs root" >&2; exit 1; }
if [[ $PROFILE == release ]]; then cargo build -q --release --bins; else cargo build -q --bins; fi
BIN="$(pwd)/target/$PROFILE"
W="$(mktemp -d /var/tmp/fvfs-bench-tiers.XXXXXX)"
chmod 755 "$W"
S3PID=""
cleanup() {
	umount "$W/mnt" 2>/dev/null || umount -l "$W/mnt" 2>/dev/null || true
	[[ -n $S3PID ]] && kill "$S3PID" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT
unset AWS_CA_BUNDLE
export AWS_ACCESS_KEY_ID=fvfs-bench AWS_SECRET_ACCESS_KEY=fvfs-bench-secret AWS_REGION=us-east-1
mkdir -p "$W/mnt" "$W/s3"
"$BIN/fvfs-s3-server" --root "$W/s3" --bucket fvfs --port 0 \
	--access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" >"$W/s3.out" 2>"$W/s3.log" &
S3PID=$!
for _ in $(seq 100); do grep -q endpoint= "$W/s3.out" && break; sleep 0.1; done
EP=$(grep -o 'endpoint=[^ ]*' "$W/s3.out" | cut -d= -f2)
META="sqlite://$W/meta.db"
printf '[upload]\nflush_size_mb = 64\nflush_interval_secs = 0\n' >"$W/fvfs.toml"
export FVFS_CONFIG="$W/fvfs.toml"
"$BIN/fvfsd" format --meta "$META" --tier "local=$W/local" --tier "nas=$W/nas,keep-copy" \
	--tier "s3=s3://fvfs/bench?endpoint=$EP&region=us-east-1&path_style=true" >/dev/null
mount_fs() { "$BIN/fvfsd" mount --meta "$META" --cache-size 0 --log "$W/mount.log" "$W/mnt" >/dev/null; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1048576 / s }'; }
lacking_s3() { python3 -c "import sqlite3,sys; c=sqlite3.connect('$W/meta.db'); print(c.execute('SELECT COUNT(*) FROM blocks WHERE refcount>0 AND (tiers & 4)=0').fetchone()[0])"; }
read_mbps() {
	drop
	local t0 t1
	t0=$(now)
	dd if="$W/mnt/big" of=/dev/null bs=1M status=none
	t1=$(now)
	mbps $((SIZE_MIB << 20)) "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"
}

head -c $((SIZE_MIB << 20)) /dev/urandom >"$W/src"
mount_fs
t0=$(now)
dd if="$W/src" of="$W/mnt/big" bs=1M conv=fsync status=none
t1=$(now)
write=$(mbps $((SIZE_MIB << 20)) "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')")
# Replication to S3 runs from the write on; measure until every block is on S3.
for _ in $(seq 6000); do [[ $(lacking_s3) -eq 0 ]] && break; sleep 0.1; done
t2=$(now)
repl=$(mbps $((SIZE_MIB << 20)) "$(awk -v a="$t0" -v b="$t2" 'BEGIN{print b-a}')")
for _ in $(seq 6000); do "$BIN/fvfsd" wal --meta "$META" | grep -q '^0 pending' && break; sleep 0.1; done
hot=$(read_mbps)
cmp "$W/src" "$W/mnt/big"
umount "$W/mnt"
# Warm only: no hot copies, and no promotion back into the hot tier.
rm -rf "$W/local/blocks"
"$BIN/fvfsd" tier set local --meta "$META" --high 1 --low 0 >/dev/null
mount_fs
warm=$(read_mbps)
umount "$W/mnt"
# Cold only: no warm copies either, and the warm tier no longer asks for them.
rm -rf "$W/nas/blocks"
"$BIN/fvfsd" tier set nas --meta "$META" --keep-copy false >/dev/null
mount_fs
cold=$(read_mbps)
cmp "$W/src" "$W/mnt/big"
umount "$W/mnt"
printf '\n%-44s %8s\n' "tiers benchmark, ${SIZE_MIB} MiB file" "MiB/s"
printf '%-44s %8s\n' "write + fsync (lands on the hot tier)" "$write"
printf '%-44s %8s\n' "replication: write start -> all blocks on S3" "$repl"
printf '%-44s %8s\n' "read, hot tier (local dir)" "$hot"
printf '%-44s %8s\n' "read, warm tier only (second dir)" "$warm"
printf '%-44s %8s\n' "read, cold tier only (S3 on loopback)" "$cold"
printf '{"bench":"tiers","size_mib":%s,"write":%s,"replication_s3":%s,"read_hot":%s,"read_warm":%s,"read_cold":%s}\n' \
	"$SIZE_MIB" "$write" "$repl" "$hot" "$warm" "$cold"
