#!/usr/bin/env bash
# Music view benchmark at scale (issue 11): a synthetic library of N tracks (default
# 1,000,000; tags only: a few unique bytes per file, made by bench/music_gen.py with a
# beets library.db of their tags) plus three large files of random bytes, on one
# directory origin. Owns the run: format a filesystem (its block store holds the music
# cache), register the origin, `fvfsd music import-beets` (timed, peak RSS), the view
# built and rebuilt (timed, peak RSS), then bench/music_measure.py on a real
# `fvfsd music mount`: mount time, stat/readdir/open latency cold and warm, search over
# the control socket, RSS idle and peak, sequential reads from the origin, the cache and
# ext4. Prints every figure and a table against the issue's targets.
# The generated library is kept in FVFS_MUSIC_LIB (default /var/tmp/fvfs-bench-music-lib-N)
# and reused by later runs (it takes ~2 minutes to make); the scratch directory is removed.
# Needs root (drop_caches, FUSE) and python3.
#   bench/music.sh [N] [BIG_MIB]   # defaults 1000000 and 200; FVFS_PROFILE=release
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
N="${1:-1000000}"
BIG_MIB="${2:-200}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $(id -u) -eq 0 && -c /dev/fuse ]] || fvfs_die "bench/music.sh needs root and /dev/fuse"
command -v python3 >/dev/null || fvfs_die "bench/music.sh needs python3"
[[ -x /usr/bin/time ]] || fvfs_die "bench/music.sh needs /usr/bin/time (GNU time, for peak RSS)"
fvfs_build_bins
LIB="${FVFS_MUSIC_LIB:-/var/tmp/fvfs-bench-music-lib-$N}"
TEMPLATE='$albumartist/$album%aunique{} ($year)/$track $title.$format'

fvfs_on_teardown() {
	if [[ -n ${MNT:-} ]]; then
		umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
	fi
	# The mount process started by music_measure.py: it exits on umount; stop it if not.
	if [[ -n ${MOUNT_PID:-} ]]; then fvfs_stop_pid "$MOUNT_PID" "fvfsd music mount"; fi
}
trap fvfs_teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ ! -f $LIB/library.db ]]; then
	fvfs_log "making the synthetic library ($N tracks, 3 x $BIG_MIB MiB) in $LIB"
	rm -rf "$LIB"
	mkdir -p "$LIB"
	timeout 3600 python3 "$HERE/music_gen.py" "$LIB" "$N" "$BIG_MIB"
else
	fvfs_log "reusing the synthetic library in $LIB"
fi

fvfs_mktemp bench-music
META_DB="$FVFS_WORK/meta.db"
META="sqlite://$META_DB"
MNT="$FVFS_WORK/mnt"
SOCK="$FVFS_WORK/control.sock"
mkdir -p "$FVFS_WORK/blocks" "$MNT"
"$FVFSD" format --meta "$META" --storage "$FVFS_WORK/blocks" >/dev/null
"$FVFSD" music origin add "local=$LIB/files" --meta "$META" >/dev/null

# step NAME CMD...: run CMD under GNU time (bounded to an hour); print its wall time (s)
# and peak RSS (MiB), and keep its output in FVFS_WORK/NAME.out.
step() {
	local name="$1"
	shift
	fvfs_log "$name: $*"
	timeout 3600 /usr/bin/time -f '%e %M' -o "$FVFS_WORK/$name.time" "$@" >"$FVFS_WORK/$name.out" 2>&1 ||
		fvfs_die "$name failed: $(tail -n 20 "$FVFS_WORK/$name.out")"
	read -r secs kib <"$FVFS_WORK/$name.time"
	printf '%s_s=%s\n%s_peak_rss_mib=%s\n' "$name" "$secs" "$name" "$((kib / 1024))"
	sed 's/^/  /' "$FVFS_WORK/$name.out"
}
{
	# No view yet: the import alone (index rows, then the search index's sync).
	step import "$FVFSD" music import-beets "$LIB/library.db" --meta "$META"
	# The view's first build, then a rebuild over it (directory ids kept, swap).
	step view_build "$FVFSD" music view add artists "$TEMPLATE" --meta "$META"
	step view_rebuild "$FVFSD" music view add artists "$TEMPLATE" --meta "$META"
	printf 'meta_db_mib=%s\n' "$(($(stat -c %s "$META_DB") >> 20))"
	printf 'search_index_mib=%s\n' "$(du -sm "$FVFS_WORK/music-search" | cut -f1)"
} | tee "$FVFS_WORK/results.txt"

python3 "$HERE/music_measure.py" "$FVFSD" "$META" "$META_DB" "$MNT" "$SOCK" artists \
	"$LIB/files" "$FVFS_WORK/mount.log" | tee -a "$FVFS_WORK/results.txt" &
MEASURE=$!
# The mount's pid, for the teardown, as soon as the measure prints it.
for _ in $(seq 600); do
	MOUNT_PID="$(sed -n 's/^mount_pid=//p' "$FVFS_WORK/results.txt")"
	[[ -n $MOUNT_PID ]] && break
	kill -0 "$MEASURE" 2>/dev/null || break
	sleep 1
done
wait "$MEASURE" || fvfs_die "the measures failed (log: $FVFS_WORK/mount.log)"
fvfs_unmount "$MNT"
[[ -z ${MOUNT_PID:-} ]] || fvfs_wait_pid "$MOUNT_PID" 60 || true

r() { sed -n "s/^$1=//p" "$FVFS_WORK/results.txt" | tail -1; }
echo
echo "profile=${FVFS_PROFILE:-debug} tracks=$N view: $(r view_tracks) files, $(r view_dirs) dirs"
printf '%-44s %-12s %s\n' "measure" "target" "measured"
row() { printf '%-44s %-12s %s\n' "$1" "$2" "$3"; }
row "import-beets (s, peak RSS MiB)" "-" "$(r import_s) s, $(r import_peak_rss_mib) MiB"
row "view build / rebuild (s)" "-" "$(r view_build_s) / $(r view_rebuild_s) s, $(r view_build_peak_rss_mib) / $(r view_rebuild_peak_rss_mib) MiB"
row "mount: spawn to live, cold / warm (ms)" "<100 (50)" "$(r mount_cold_live_ms) / $(r mount_warm_live_ms)"
row "mount: first stat of the root (ms)" "-" "$(r mount_cold_first_stat_ms) / $(r mount_warm_first_stat_ms)"
row "mount: start-up work after live (s)" "-" "$(r startup_work_s)"
for op in stat open readdir; do
	row "$op cold p50/p99 (ms)" "-" "$(r "${op}_cold_p50_ms") / $(r "${op}_cold_p99_ms")"
	row "$op warm p50/p99 (ms)" "-" "$(r "${op}_warm_p50_ms") / $(r "${op}_warm_p99_ms")"
done
row "readdir of the root, $(r readdir_root_entries) entries (ms)" "<10" "first entry $(r readdir_root_first_entry_ms), whole $(r readdir_root_first_ms), again $(r readdir_root_again_p50_ms)"
row "the same names on ext4 (ms)" "-" "whole $(r readdir_root_ext4_first_ms), again $(r readdir_root_ext4_again_p50_ms)"
row "search p50/p99 (ms), first pass" "<500 (p99 50)" "$(r search_first_p50_ms) / $(r search_first_p99_ms)"
row "search p50/p99 (ms), same queries again" "<500 (p99 50)" "$(r search_again_p50_ms) / $(r search_again_p99_ms)"
row "RSS at mount / idle / peak (MiB)" "idle<50 peak<500" "$(r rss_at_mount_mib) / $(r rss_idle_mib) / $(r rss_peak_mib)"
row "read from the origin (MB/s)" ">200" "$(r read_origin_mbps) (mean $(r read_origin_mbps_mean))"
row "read from the cache (MB/s)" ">500" "$(r read_cache_mbps) (mean $(r read_cache_mbps_mean))"
row "read from ext4 directly (MB/s)" "-" "$(r read_ext4_mbps) (mean $(r read_ext4_mbps_mean))"
cp "$FVFS_WORK/results.txt" "$(fvfs_target_dir)/bench-music-results.txt" 2>/dev/null || true
