#!/usr/bin/env bash
# bench/shipping.sh: what continuous metadata shipping (`[backup]`, docs/SEMANTICS.md
# "Recovery point") costs, measured on release binaries over the S3 test server with a
# hot local tier in front of it (the README's shape). Not part of CI; needs root and
# /dev/fuse. About 15 minutes.
#
#   sudo bench/shipping.sh
#   sudo SHIP_SECS=30 SHIP_RUN_MIB=128 SHIP_ROUNDS=1 bench/shipping.sh
#
# Part 1, for a mount with shipping off and one with it on (`[backup] enabled`), each on a
# fresh filesystem: SHIP_SECS of metadata operations (bench/ship_work.py ops: create 4 KiB,
# chmod, rename, unlink), SHIP_IDLE_SECS idle, then bench/race_work.py's fsync-heavy
# workloads (SQLite WAL, 2000 transactions; 4 KiB append + fsync, 500). For the `on`
# mount it counts the shipped objects on the S3 server's directory before, after the busy
# phase and after the idle phase (PUTs per minute, bytes per 1,000 operations).
# Part 2: bench/run.sh (fvfs-bench against a native directory) alternately off and on,
# SHIP_ROUNDS times each, at SHIP_RUN_MIB.
#
# Knobs: SHIP_SECS=60, SHIP_IDLE_SECS=30, SHIP_RUN_MIB=256, SHIP_ROUNDS=3,
# FVFS_SKIP_BUILD=1 (binaries of $CARGO_TARGET_DIR/release already built).
# Output: the tables on stdout, the JSON lines in $CARGO_TARGET_DIR/shipping.jsonl.
set -euo pipefail
export FVFS_PROFILE=release
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
HERE="$FVFS_ROOT/bench"
SECS="${SHIP_SECS:-60}"
IDLE="${SHIP_IDLE_SECS:-30}"
RUN_MIB="${SHIP_RUN_MIB:-256}"
ROUNDS="${SHIP_ROUNDS:-3}"

fvfs_require_privileged "bench/shipping.sh"
fvfs_build_bins
export FVFS_SKIP_BUILD=1
OUT="$(fvfs_target_dir)/shipping.jsonl"
: >"$OUT"
CONF_DIR="$(mktemp -d /var/tmp/fvfs-ship-conf.XXXXXX)"
trap 'rm -rf "$CONF_DIR"' EXIT
for mode in on off; do
	enabled=true
	[[ $mode == on ]] || enabled=false
	printf '[backup]\nenabled = %s\nmax_lag_secs = 10\n' "$enabled" >"$CONF_DIR/$mode.toml"
done

# part1 MODE: one fresh filesystem, the workloads, the census.
part1() {
	local mode="$1"
	(
		export FVFS_CONFIG="$CONF_DIR/$mode.toml" FVFS_HOT_TIER=1 FVFS_LOG_NAME="shipping-$mode"
		fvfs_setup_fs "shipping-$mode" ship
		local gens="$FVFS_WORK/s3/$FVFS_S3_BUCKET/ship/meta/gen" status="$FVFS_WORK/meta.db.ship.json"
		census() { # census PHASE
			if [[ $mode == on ]]; then
				python3 "$HERE/ship_work.py" objects "$gens" --tag "$mode" --phase "$1" >>"$OUT"
				python3 "$HERE/ship_work.py" status "$status" --tag "$mode" --phase "$1" >>"$OUT"
			fi
		}
		# The base of this start is on the tier once the status names its generation.
		if [[ $mode == on ]]; then
			for _ in $(seq 1 60); do
				grep -q '"generation":"' "$status" 2>/dev/null && break
				sleep 1
			done
			grep -q '"generation":"' "$status" || fvfs_die "the mount shipped no base within 60 s"
		fi
		census before
		fvfs_log "[$mode] $SECS s of metadata operations"
		python3 "$HERE/ship_work.py" ops "$FVFS_MNT" --secs "$SECS" --tag "$mode" | tee -a "$OUT"
		# Whatever the busy phase committed is on the tier within max_lag (10 s).
		sleep 12
		census busy
		fvfs_log "[$mode] $IDLE s idle"
		sleep "$IDLE"
		census idle
		hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$FVFS_MOUNT_PID/status")
		printf '{"c":"%s","w":"rss","hwm_kib":%s}\n' "$mode" "$hwm" >>"$OUT"
		printf '{"c":"%s","w":"idle","secs":%s}\n' "$mode" "$IDLE" >>"$OUT"
		fvfs_log "[$mode] SQLite WAL and append + fsync"
		python3 "$HERE/race_work.py" "$FVFS_MNT" sqlite --tag "$mode" --deadline 300 | tee -a "$OUT"
		python3 "$HERE/race_work.py" "$FVFS_MNT" append --tag "$mode" --deadline 300 | tee -a "$OUT"
	)
}

for mode in off on; do part1 "$mode"; done

for round in $(seq 1 "$ROUNDS"); do
	for mode in off on; do
		fvfs_log "bench/run.sh, shipping $mode, round $round"
		FVFS_CONFIG="$CONF_DIR/$mode.toml" FVFS_HOT_TIER=1 BENCH_SIZE_MIB="$RUN_MIB" BENCH_RSS_MIB=0 \
			"$HERE/run.sh" >&2
		python3 - "$(fvfs_target_dir)/bench.json" "$mode" "$round" >>"$OUT" <<'EOF'
import json, sys
line = [l for l in open(sys.argv[1]) if l.startswith('{"bench"')][-1]
r = json.loads(line)
r.update(c=sys.argv[2], w="run", round=int(sys.argv[3]))
print(json.dumps(r))
EOF
	done
done

python3 "$HERE/ship_work.py" report "$OUT"
fvfs_log "JSON lines: $OUT"
