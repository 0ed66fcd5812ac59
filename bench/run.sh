#!/usr/bin/env bash
# Benchmark a fresh fvfs mount (S3 test server as storage) against a native directory under
# /var/tmp with `fvfs-bench`, then measure the mount's peak RSS while a 2 GiB file goes
# through it (on a fresh daemon, so VmHWM is that run's own).
#
#   bench/run.sh                 # needs root (mount, drop_caches) and /dev/fuse
#
# Knobs:
#   BENCH_SIZE_MIB=512      big-file size of the first run
#   BENCH_RSS_MIB=2048      big-file size of the RSS run (0 skips it)
#   BENCH_NATIVE_PARENT=/var/tmp   where the native comparison directory is created
#   FVFS_PROFILE=release    benchmark release binaries (default: the dev profile of the tests)
# plus those of scripts/lib.sh. Output: target/bench-SIZE.log and target/bench.json (the JSON
# lines of both runs), target/bench-fvfsd.log (the daemon).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

SIZE_MIB="${BENCH_SIZE_MIB:-512}"
RSS_MIB="${BENCH_RSS_MIB:-2048}"
NATIVE_PARENT="${BENCH_NATIVE_PARENT:-/var/tmp}"

fvfs_require_privileged "bench"
fvfs_build_bins
FVFS_BENCH="$(fvfs_bin_dir)/fvfs-bench"
[[ -x $FVFS_BENCH ]] || fvfs_die "$FVFS_BENCH is missing (cargo build --bins)"

# Room for the native copy, the S3 objects and the local cache of the biggest run.
need_mib=$((3 * (SIZE_MIB > RSS_MIB ? SIZE_MIB : RSS_MIB) + 512))
avail_mib=$(($(df -Pk "$NATIVE_PARENT" | awk 'NR==2 {print $4}') / 1024))
((avail_mib >= need_mib)) ||
	fvfs_die "$NATIVE_PARENT has ${avail_mib} MiB free; the benchmark needs about ${need_mib} MiB"

NATIVE="$(mktemp -d "$NATIVE_PARENT/fvfs-bench-native.XXXXXX")"
fvfs_on_teardown() { rm -rf "$NATIVE"; } # called by fvfs_teardown (the EXIT trap)
trap 'rm -rf "$NATIVE"' EXIT                # until fvfs_setup_fs installs fvfs_teardown
export FVFS_LOG_NAME=bench
fvfs_setup_fs bench bench

TARGET="$(fvfs_target_dir)"
JSON="$TARGET/bench.json"
: >"$JSON"

run_bench() { # run_bench MIB
	local mib="$1" log="$TARGET/bench-$1.log"
	fvfs_log "fvfs-bench: ${mib} MiB big file, fvfs $FVFS_MNT vs native $NATIVE (log $log)"
	# Bounded: even at 5 MiB/s, a 2 GiB run ends within the limit.
	timeout --kill-after=30 $((600 + mib / 2)) \
		"$FVFS_BENCH" "$FVFS_MNT" --native "$NATIVE" --size-mib "$mib" --pid "$FVFS_MOUNT_PID" \
		</dev/null 2>&1 | tee "$log"
	grep -E '^\{"bench"' "$log" >>"$JSON" || fvfs_die "no JSON summary in $log"
}

fvfs_log "binaries: $(fvfs_bin_dir) (FVFS_PROFILE=${FVFS_PROFILE:-debug})"
run_bench "$SIZE_MIB"
if ((RSS_MIB > 0)); then
	fvfs_log "remounting for the RSS run (fresh daemon, fresh VmHWM)"
	fvfs_remount
	run_bench "$RSS_MIB"
	hwm="$(grep -E '^\{"bench"' "$TARGET/bench-$RSS_MIB.log" | sed -E 's/.*"hwm_after":([0-9a-z]+).*/\1/')"
	if [[ $hwm =~ ^[0-9]+$ ]]; then
		fvfs_log "peak RSS of the mount while copying a $RSS_MIB MiB file: $((hwm / 1024)) MiB"
	fi
fi
fvfs_log "JSON summaries: $JSON"
