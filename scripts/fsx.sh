#!/usr/bin/env bash
# Run fsx (the file-system exerciser) against a fresh fvfs mount backed by the S3 test server:
# 100,000 random operations per seed (1, 2, 3, run at once on three files), each compared
# with an in-memory model.
#
#   scripts/fsx.sh                    # needs root and /dev/fuse
#
# Knobs:
#   FSX_OPS=N          operations per seed (default 100000)
#   FSX_SEEDS="1 2 3"  seeds to run
#   FSX_TIMEOUT=S      wall-clock limit per seed (default 1800; the seeds run at once)
# plus those of scripts/lib.sh (FVFS_REQUIRE_PRIVILEGED, FVFS_SKIP_BUILD, FVFS_KEEP_TMP, ...).
# Output: target/fsx-SEED.log per seed, target/fsx-artifacts/SEED/ (fsx's .fsxlog/.fsxgood on a
# failure), target/fsx-fvfsd.log (the daemon).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OPS="${FSX_OPS:-100000}"
SEEDS="${FSX_SEEDS:-1 2 3}"
TIMEOUT="${FSX_TIMEOUT:-1800}"

fvfs_require_privileged "fsx"
command -v fsx >/dev/null || fvfs_die "fsx is not on PATH: cargo install --locked fsx"
fvfs_build_bins

export FVFS_LOG_NAME=fsx
fvfs_setup_fs fsx fsx

# Schema: fsx 0.3.2 src/main.rs (struct Config / Weights). Inside [weights], a key left out
# takes its default: read/write/mapread/mapwrite/truncate 10, everything else 0. So this is
# the default operation mix plus fsync and punch_hole (fsx panics if punch_hole is
# unsupported).
CONFIG="$FVFS_WORK/fsx.toml"
cat >"$CONFIG" <<'EOF'
# Written by scripts/fsx.sh.
flen = 262144

[weights]
read = 10
write = 10
mapread = 10
mapwrite = 10
truncate = 10
fsync = 2
punch_hole = 2
EOF

TARGET="$(fvfs_target_dir)"
ARTIFACTS="$TARGET/fsx-artifacts"
mkdir -p "$ARTIFACTS"
# The seeds run at once, each on its own file of the one mount: three processes sharing
# the daemon (on two cores ~3/4 of the time of running them in turn, docs/BENCHMARKS.md).
run_seed() {
	local seed=$1 log="$TARGET/fsx-$1.log" file="$FVFS_MNT/fsx-$1.dat" start=$SECONDS rc
	fvfs_log "fsx seed $seed: $OPS operations on $file (timeout ${TIMEOUT}s, log $log)"
	mkdir -p "$ARTIFACTS/$seed"
	set +e
	(cd "$ARTIFACTS/$seed" && timeout --kill-after=30 "$TIMEOUT" \
		fsx -N "$OPS" -S "$seed" -f "$CONFIG" -P "$ARTIFACTS/$seed" "$file" </dev/null) >"$log" 2>&1
	rc=$?
	set -e
	echo "$rc $((SECONDS - start))" >"$FVFS_WORK/fsx-$seed.rc"
}
pids=()
for seed in $SEEDS; do
	run_seed "$seed" &
	pids+=($!)
done
for pid in "${pids[@]}"; do
	wait "$pid" || true
done
failures=()
results=()
for seed in $SEEDS; do
	log="$TARGET/fsx-$seed.log"
	read -r rc elapsed <"$FVFS_WORK/fsx-$seed.rc" || { rc=255; elapsed=0; }
	if [[ $rc -eq 0 ]] && grep -q 'All operations completed A-OK!' "$log"; then
		fvfs_log "fsx seed $seed: A-OK in ${elapsed}s"
		results+=("seed=$seed ok ${elapsed}s")
		rm -f "$FVFS_MNT/fsx-$seed.dat"
	else
		if [[ $rc -eq 124 || $rc -eq 137 ]]; then
			why="timed out after ${TIMEOUT}s"
		else
			why="exit $rc"
		fi
		fvfs_warn "fsx seed $seed FAILED ($why, ${elapsed}s); last lines of $log:"
		tail -n 25 "$log" >&2
		failures+=("$seed")
		results+=("seed=$seed FAILED($why) ${elapsed}s")
	fi
done
if ! kill -0 "$FVFS_MOUNT_PID" 2>/dev/null; then
	fvfs_warn "the fvfsd mount daemon died; see target/fsx-fvfsd.log"
	failures+=("daemon-died")
fi

echo "FSX ops=$OPS ${results[*]}"
if ((${#failures[@]})); then
	fvfs_die "fsx failed for: ${failures[*]}"
fi
fvfs_log "fsx PASSED for seeds: $SEEDS"
