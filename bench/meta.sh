#!/usr/bin/env bash
# bench/meta.sh: metadata operations per second (create, stat, rename, unlink; mdtest's
# shape, bench/meta_work.py) on a native directory (ext4 or whatever /var/tmp is), on a
# mount over SQLite and on a mount over PostgreSQL (a private cluster, scripts/pg.sh),
# with 1 and 4 concurrent clients, and on PostgreSQL with 4 mounts of the one filesystem
# (one client each: four hosts' worth of mounts on this machine). Release binaries over
# the S3 test server. Not part of CI; needs root and /dev/fuse. About 6 minutes.
#
#   sudo bench/meta.sh
#   sudo META_FILES=500 META_CLIENTS="1 4" bench/meta.sh
#
# "Clients" are processes, on the one mount except in the "postgres-4m" rows.
# Output: the table on stdout, the JSON lines in $CARGO_TARGET_DIR/meta.jsonl.
set -euo pipefail
export FVFS_PROFILE=release
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
HERE="$FVFS_ROOT/bench"
FILES="${META_FILES:-2000}"
CLIENTS="${META_CLIENTS:-1 4}"

fvfs_require_privileged "bench/meta.sh"
fvfs_build_bins
export FVFS_SKIP_BUILD=1
OUT="$(fvfs_target_dir)/meta.jsonl"
: >"$OUT"
FVFS_TEST_PG="$("$FVFS_ROOT/scripts/pg.sh" start | tail -1)"
export FVFS_TEST_PG

work() { # work LABEL DIR[:DIR...] [CLIENTS]
	local n
	for n in ${3:-$CLIENTS}; do
		fvfs_log "[$1] $n client(s) × $FILES files"
		timeout 1800 python3 "$HERE/meta_work.py" "$2" "$n" "$FILES" |
			python3 -c 'import json,sys
for l in sys.stdin:
    r = json.loads(l); r["c"] = sys.argv[1]; print(json.dumps(r))' "$1" | tee -a "$OUT"
	done
}

NATIVE="$(mktemp -d /var/tmp/fvfs-meta-native.XXXXXX)"
work native "$NATIVE"
rm -rf "$NATIVE"
EXTRA_PIDS=()
EXTRA_MNTS=()
fvfs_on_teardown() {
	local m p
	for m in "${EXTRA_MNTS[@]}"; do fvfs_unmount "$m"; done
	for p in "${EXTRA_PIDS[@]}"; do fvfs_wait_pid "$p" 60 || fvfs_stop_pid "$p" fvfsd; done
}
for engine in sqlite postgres; do
	(
		export FVFS_TEST_META="$engine" FVFS_LOG_NAME="meta-$engine"
		fvfs_setup_fs "meta-$engine" meta
		work "$engine" "$FVFS_MNT"
		[[ $engine == postgres ]] || exit 0
		# Three more mounts of the same filesystem, each with its own cache: 4 "hosts".
		roots="$FVFS_MNT"
		for i in 2 3 4; do
			m="$FVFS_WORK/mnt$i"
			mkdir -p "$m"
			RUST_LOG="${RUST_LOG:-warn}" "$FVFSD" mount --meta "$FVFS_META" \
				--cache-dir "$FVFS_WORK/cache$i" --foreground "$m" >"$FVFS_WORK/mount$i.log" 2>&1 </dev/null &
			EXTRA_PIDS+=($!)
			EXTRA_MNTS+=("$m")
			fvfs_wait_for_mount "$m" 60 "$!" || fvfs_die "mount $i of the filesystem did not go live"
			roots="$roots:$m"
		done
		work postgres-4m "$roots" 4
	)
done

python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
key = {(r["c"], r["clients"], r["phase"]): r for r in rows}
print(f"{'':10} {'clients':>7} " + " ".join(f"{p:>16}" for p in ["create", "stat", "rename", "unlink"]))
for c in ["native", "sqlite", "postgres", "postgres-4m"]:
    for n in sorted({r["clients"] for r in rows}):
        cells = []
        for p in ["create", "stat", "rename", "unlink"]:
            r = key.get((c, n, p))
            cells.append(f"{r['per_client_ops']:>7}/{r['total_ops']:>8}" if r else " " * 16)
        print(f"{c:10} {n:>7} " + " ".join(cells))
print("cells: ops/s per client (the slowest) / in total")
PY
fvfs_log "JSON lines: $OUT"
