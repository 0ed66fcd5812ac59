#!/usr/bin/env bash
# bench/ab.sh: two fvfsd binaries in alternation, same minute, the README's shape (a local
# hot tier in front of an S3 tier on one fvfs-s3-server). Per binary and round, one fresh
# filesystem and mount, then: 4 KiB append+fsync latency (2 x 2000 appends), 1000 x 4 KiB
# creates (4 runs), SQLite in WAL mode (2 x 2000 transactions), and the memory after
# 256 MiB written and read (VmHWM, and VmRSS / RssAnon after 12 s idle). One line per
# binary and round. Not in CI; release binaries; needs root and /dev/fuse.
#   sudo bench/ab.sh OLD_FVFSD NEW_FVFSD [ROUNDS]     (default 2 rounds)
# Build an older binary with e.g.
#   git worktree add /tmp/old REV && (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target cargo build --release -p fvfsd)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
S3BIN="${FVFS_S3_SERVER:-$ROOT/target/release/fvfs-s3-server}"
ROUNDS="${3:-2}"
[[ $# -ge 2 && -x $1 && -x $2 ]] || { echo "usage: $0 OLD_FVFSD NEW_FVFSD [ROUNDS]" >&2; exit 2; }
[[ -x $S3BIN ]] || { echo "$S3BIN is missing (cargo build --release --bins)" >&2; exit 2; }
W="$(mktemp -d /var/tmp/fvfs-ab.XXXXXX)"
S3PID=""
MPID=""
cleanup() {
	mountpoint -q "$W/mnt" 2>/dev/null && fusermount3 -u "$W/mnt" 2>/dev/null || true
	[[ -n $MPID ]] && kill "$MPID" 2>/dev/null || true
	[[ -n $S3PID ]] && kill "$S3PID" 2>/dev/null || true
	sleep 0.5
	rm -rf "$W"
}
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=fvfsab AWS_SECRET_ACCESS_KEY=fvfsabsecret
json() { python3 -c "import json,sys; print(json.loads(sys.stdin.read()).get('$1'))"; }

one() { # one BIN LABEL: a fresh filesystem, the workloads, one line
	local bin="$1" label="$2" d="$W/run" ep out i
	rm -rf "$d" && mkdir -p "$d/mnt" "$d/local" "$d/s3"
	"$S3BIN" --root "$d/s3" --bucket fvfsab --port 0 --access-key "$AWS_ACCESS_KEY_ID" \
		--secret-key "$AWS_SECRET_ACCESS_KEY" >"$d/s3.out" 2>"$d/s3.log" </dev/null &
	S3PID=$!
	for _ in $(seq 100); do grep -q '^endpoint=' "$d/s3.out" && break; sleep 0.1; done
	ep="$(sed -n 's/^endpoint=\([^ ]*\).*/\1/p' "$d/s3.out")"
	"$bin" format --meta "sqlite://$d/meta.db" --tier "local=$d/local" \
		--tier "s3=s3://fvfsab/p?endpoint=$ep&region=us-east-1&path_style=true" >"$d/format.log" 2>&1 ||
		{ echo "$label: fvfsd format failed: $(tail -3 "$d/format.log")" >&2; exit 1; }
	"$bin" mount --meta "sqlite://$d/meta.db" --cache-dir "$d/cache" --foreground "$d/mnt" \
		</dev/null >"$d/mount.log" 2>&1 &
	MPID=$!
	for _ in $(seq 100); do mountpoint -q "$d/mnt" && break; sleep 0.1; done
	mountpoint -q "$d/mnt" || { echo "$label: mount failed: $(tail -3 "$d/mount.log")" >&2; exit 1; }
	out="$label:"
	for i in 1 2; do out="$out [$(python3 "$HERE/append_fsync.py" "$d/mnt/a$i" 2000)]"; done
	for i in 1 2 3 4; do
		mkdir "$d/mnt/c$i"
		out="$out creates/s=$(python3 "$HERE/race_work.py" "$d/mnt/c$i" small --n 1000 --tag ab | json files_per_s)"
	done
	for i in 1 2; do
		mkdir "$d/mnt/q$i"
		out="$out sqlite_s=$(python3 "$HERE/race_work.py" "$d/mnt/q$i" sqlite --tag ab | json seconds)"
	done
	head -c $((256 << 20)) /dev/urandom >"$d/mnt/big"
	cat "$d/mnt/big" >/dev/null
	out="$out hwm_mb=$(($(awk '/VmHWM/{print $2}' "/proc/$MPID/status") / 1024))"
	sleep 12
	out="$out idle_rss_mb=$(($(awk '/VmRSS/{print $2}' "/proc/$MPID/status") / 1024))"
	out="$out idle_anon_mb=$(($(awk '/RssAnon/{print $2}' "/proc/$MPID/status") / 1024))"
	echo "$out"
	fusermount3 -u "$d/mnt"
	for _ in $(seq 300); do kill -0 "$MPID" 2>/dev/null || break; sleep 0.1; done
	kill "$S3PID" 2>/dev/null || true
	wait "$S3PID" 2>/dev/null || true
	MPID="" S3PID=""
}

echo "# bench/ab.sh $(date -u +%FT%TZ): A=$1 B=$2, $ROUNDS rounds"
for ((r = 1; r <= ROUNDS; r++)); do
	one "$1" "A round $r"
	one "$2" "B round $r"
done
