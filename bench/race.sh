#!/usr/bin/env bash
# bench/race.sh: race fvfs against its peers over the SAME S3 test server, in one run, and
# print a markdown table (rows = workloads, columns = contenders) and the targets (ratios
# from this run, PASS/FAIL). Not part of CI: it is slow (10-15 minutes at 512 MiB),
# installs packages and needs root.
#
# Contenders, one after the other, each mounted under a scratch directory in /var/tmp:
#   ext4           a plain directory on /var/tmp (the native filesystem; the header says which)
#   rclone         rclone mount --vfs-cache-mode full over the S3 server
#   s3fs           s3fs-fuse, path-style requests, over the S3 server
#   fvfs-s3        fvfs with only an S3 tier
#   fvfs-s3-wb     the same with `[upload] writeback = true` (fsync from the local journal)
#   fvfs-local+s3  fvfs with a hot local tier in front of the S3 tier (the README's shape)
# One fvfs-s3-server serves them all: one bucket, one prefix per contender (and one for the
# raw PUT measure, an `rclone copy` of the big file). The workloads are bench/race_work.py
# (one JSON line each): big write + fsync, cold read (after drop_caches, no remount) and
# re-read, 1000 x 4 KiB creates, stat, SQLite WAL, 4 KiB append+fsync, renames, a source
# tree (git archive of crates/) extracted and hash-verified; the RSS (peak and idle) of every
# daemon (targets for fvfs only) and, for fvfs-local+s3, the replication throughput to S3.
#
# Run (as root; rclone, s3fs and fuse3 are installed with apt-get when missing):
#   sudo bench/race.sh
#   sudo RACE_SIZE_MIB=128 RACE_ONLY=ext4,fvfs-local+s3 RACE_OUT=/tmp/race.md bench/race.sh
# Knobs:
#   RACE_SIZE_MIB=512     size of the big file
#   RACE_ONLY=a,b         only these contenders (comma list of the names above)
#   RACE_OUT=FILE         also write the printed report to FILE
#   RACE_DEADLINE=300     seconds a workload may run before it stops and reports "timeout"
#   RACE_REPL_TIMEOUT=600 seconds to wait for the replication to S3 to drain
#   RACE_KEEP=1           keep the scratch directory (logs of every daemon)
#   FVFS_PROFILE=release  binaries of target/$FVFS_PROFILE (built with cargo build --release --bins)
#   FVFS_SKIP_BUILD=1     do not run cargo build
# The report goes to stdout; progress and warnings to stderr.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
WORK_PY="$HERE/race_work.py"
PROFILE="${FVFS_PROFILE:-release}"
SIZE_MIB="${RACE_SIZE_MIB:-512}"
ONLY="${RACE_ONLY:-}"
DEADLINE="${RACE_DEADLINE:-300}"
REPL_TIMEOUT="${RACE_REPL_TIMEOUT:-600}"
CONTENDERS=(ext4 rclone s3fs fvfs-s3 fvfs-s3-wb fvfs-local+s3)
BUCKET=race

log() { printf '[race %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

[[ $(id -u) -eq 0 ]] || die "bench/race.sh needs root (drop_caches, FUSE mounts, apt-get): sudo $0"
[[ -c /dev/fuse ]] || die "bench/race.sh needs /dev/fuse"
[[ $SIZE_MIB =~ ^[0-9]+$ && $SIZE_MIB -gt 0 ]] || die "RACE_SIZE_MIB must be a positive number of MiB"
if [[ -n $ONLY ]]; then
	IFS=, read -r -a only_list <<<"$ONLY"
	for c in "${only_list[@]}"; do
		[[ " ${CONTENDERS[*]} " == *" $c "* ]] || die "RACE_ONLY: unknown contender '$c' (known: ${CONTENDERS[*]})"
	done
fi
want() { [[ -z $ONLY || ",$ONLY," == *",$1,"* ]]; }
command -v python3 >/dev/null || die "bench/race.sh needs python3"

# ---- peers and FUSE tools: install what is missing (one package at a time, so one that
# cannot be installed only takes its contender out of the race).
pkgs=()
command -v fusermount3 >/dev/null || pkgs+=(fuse3)
if want rclone || want fvfs-local+s3; then command -v rclone >/dev/null || pkgs+=(rclone); fi
if want s3fs; then command -v s3fs >/dev/null || pkgs+=(s3fs); fi
if ((${#pkgs[@]})); then
	log "missing: ${pkgs[*]}; installing with apt-get install -y"
	export DEBIAN_FRONTEND=noninteractive
	timeout 600 apt-get update -q >/dev/null 2>&1 || log "WARNING: apt-get update failed"
	for p in "${pkgs[@]}"; do
		timeout 900 apt-get install -y -q "$p" >/dev/null 2>&1 || log "WARNING: apt-get install $p failed"
	done
fi

# ---- fvfs binaries
if [[ ${FVFS_SKIP_BUILD:-0} != 1 ]]; then
	if [[ $PROFILE == release ]]; then
		log "cargo build --release --bins"
		(cd "$ROOT" && cargo build --release --bins) >&2 || die "cargo build failed (FVFS_SKIP_BUILD=1 uses the binaries there are)"
	else
		log "cargo build --bins"
		(cd "$ROOT" && cargo build --bins) >&2 || die "cargo build failed (FVFS_SKIP_BUILD=1 uses the binaries there are)"
	fi
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE"
for b in fvfsd fvfs-s3-server; do
	[[ -x $BIN/$b ]] || die "$BIN/$b is missing (cargo build --bins, FVFS_PROFILE=$PROFILE)"
done

# ---- scratch directory, room, teardown
W="$(mktemp -d /var/tmp/fvfs-race.XXXXXX)"
chmod 755 "$W"
RES="$W/results.jsonl"
: >"$RES"
need_mib=$((12 * SIZE_MIB + 1024))
avail_mib=$(($(df -Pk "$W" | awk 'NR==2 {print $4}') / 1024))
MNT=""
PID=""
S3PID=""
WPID="" # the running workload
PIDS=() # every daemon started, for the teardown
MNTS=() # every mountpoint used
stop_pid() { # stop_pid PID SECONDS: wait for it to exit, then TERM, then KILL
	local pid="$1" i
	[[ -n $pid ]] || return 0
	for ((i = 0; i < $2 * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 150; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	# Reap it (a child) unless even SIGKILL left it alive: stuck in a filesystem request.
	kill -0 "$pid" 2>/dev/null || wait "$pid" 2>/dev/null || true
}
# mounted DIR: from the mount table (a dead FUSE daemon's mount fails stat and `mountpoint`)
mounted() { awk -v d="$1" '$5 == d {f = 1} END {exit !f}' /proc/self/mountinfo; }
unmount() { # unmount DIR: plain, then fusermount3 -u, then lazy
	local dir="$1"
	mounted "$dir" || return 0
	timeout 120 umount "$dir" 2>/dev/null || timeout 60 fusermount3 -u "$dir" 2>/dev/null || {
		log "WARNING: clean unmount of $dir failed; lazy unmount"
		umount -l "$dir" 2>/dev/null || fusermount3 -uz "$dir" 2>/dev/null || true
	}
}
cleanup() {
	local rc=$? m p
	set +e
	[[ -n $WPID ]] && stop_pid "$WPID" 0
	for m in "${MNTS[@]}"; do unmount "$m"; done
	for p in "${PIDS[@]}"; do stop_pid "$p" 5; done
	[[ -n $S3PID ]] && stop_pid "$S3PID" 0
	if [[ ${RACE_KEEP:-0} == 1 ]]; then
		log "kept $W (daemon logs: */*.log, results.jsonl)"
	elif findmnt -rn -o TARGET | grep -q "^$W/"; then
		log "WARNING: something under $W is still mounted; not removing it"
	else
		rm -rf "$W"
	fi
	return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
((avail_mib >= need_mib)) || die "$W has $avail_mib MiB free; the race needs about $need_mib MiB"

note() { python3 "$WORK_PY" note "$@" >>"$RES"; }
now() { date +%s.%N; }

# ---- S3 test server: one bucket, one prefix per contender
unset AWS_CA_BUNDLE FVFS_CONFIG # fvfs runs with its defaults
export AWS_ACCESS_KEY_ID=fvfs-race AWS_SECRET_ACCESS_KEY=fvfs-race-secret AWS_REGION=us-east-1
mkdir -p "$W/s3"
"$BIN/fvfs-s3-server" --root "$W/s3" --bucket "$BUCKET" --port 0 \
	--access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" \
	>"$W/s3.out" 2>"$W/s3.log" </dev/null &
S3PID=$!
for _ in $(seq 300); do
	grep -q '^endpoint=' "$W/s3.out" && break
	kill -0 "$S3PID" 2>/dev/null || break
	sleep 0.1
done
EP="$(grep -o 'endpoint=[^ ]*' "$W/s3.out" | head -1 | cut -d= -f2)"
[[ $EP == http://* ]] || die "fvfs-s3-server printed no endpoint: $(cat "$W/s3.out" "$W/s3.log")"
log "S3 test server $EP (bucket $BUCKET, pid $S3PID, data $W/s3)"
s3loc() { printf 's3://%s/%s?endpoint=%s&region=us-east-1&path_style=true' "$BUCKET" "$1" "$EP"; }
(umask 077 && cat >"$W/rclone.conf") <<EOF
[race]
type = s3
provider = Other
endpoint = $EP
access_key_id = $AWS_ACCESS_KEY_ID
secret_access_key = $AWS_SECRET_ACCESS_KEY
region = us-east-1
force_path_style = true
EOF

# ---- inputs: the big file's source, the source tree
log "making the ${SIZE_MIB} MiB source file and the source tarball (git archive HEAD crates)"
head -c $((SIZE_MIB << 20)) /dev/urandom >"$W/src"
git -C "$ROOT" archive --format=tar HEAD crates >"$W/tree.tar"

# ---- the environment, for the header
native_dir="$(dirname "$W")"
native_fs="$(findmnt -n -o FSTYPE -T "$native_dir" 2>/dev/null || echo '?')"
native_statf="$(stat -f -c %T "$native_dir")"
log "the ext4 column is a directory on $native_dir: $native_fs (stat -f -c %T: $native_statf)"
[[ $native_fs == ext4 ]] || log "WARNING: $native_dir is $native_fs, not ext4; the 'ext4' column is that filesystem"
rclone_v="$(rclone version 2>/dev/null | head -1 | awk '{print $2}')" || true
s3fs_v="$(s3fs --version 2>/dev/null | head -1 | sed -E 's/.*V([0-9.]+).*/\1/')" || true
note env env "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "host=$(hostname)" "kernel=$(uname -r)" \
	"cpus:=$(nproc)" "fvfs_rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')" \
	"profile=$PROFILE" "rclone_version=${rclone_v:-none}" "s3fs_version=${s3fs_v:-none}" \
	"native_dir=$native_dir" "native_fs=$native_fs" "native_statf=$native_statf" "size_mib:=$SIZE_MIB" \
	"loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- mounting. Each sets MNT, PID (the daemon, "" for ext4), REPL (extra bigwrite and
# rss arguments) and REASON (why it could not mount); returns non-zero on failure.
wait_mount() { # wait_mount DIR TIMEOUT PID
	local i
	for ((i = 0; i < $2 * 5; i++)); do
		if mounted "$1" && timeout 10 stat "$1" >/dev/null 2>&1; then return 0; fi
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.2
	done
	return 1
}
mount_failed() { # mount_failed LOG WHAT
	REASON="$2: $(grep -v '^\s*$' "$1" 2>/dev/null | tail -n 3 | tr '\n' ' ' | cut -c1-300)"
	[[ -n $PID ]] && stop_pid "$PID" 0
	PID=""
	return 1
}
mount_ext4() { :; }
mount_rclone() {
	command -v rclone >/dev/null || {
		REASON="rclone is not installed (apt-get install rclone failed)"
		return 1
	}
	rclone --config "$W/rclone.conf" mount "race:$BUCKET/rclone" "$MNT" \
		--vfs-cache-mode full --cache-dir "$D/cache" \
		--log-file "$D/rclone.log" --log-level NOTICE </dev/null >"$D/mount.out" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	wait_mount "$MNT" 60 "$PID" || mount_failed "$D/rclone.log" "rclone mount did not go live"
}
mount_s3fs() {
	command -v s3fs >/dev/null || {
		REASON="s3fs is not installed (apt-get install s3fs failed)"
		return 1
	}
	(umask 077 && printf '%s:%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$D/passwd")
	s3fs "$BUCKET:/s3fs" "$MNT" -f -o "url=$EP" -o use_path_request_style \
		-o "passwd_file=$D/passwd" -o endpoint=us-east-1 -o retries=1 -o dbglevel=warn \
		</dev/null >"$D/s3fs.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	wait_mount "$MNT" 60 "$PID" || mount_failed "$D/s3fs.log" "s3fs did not go live"
}
mount_fvfs() { # mount_fvfs --tier ... : format, then mount (foreground daemon, our child)
	local meta="sqlite://$D/meta.db"
	timeout 120 "$BIN/fvfsd" format --meta "$meta" "$@" </dev/null >"$D/format.log" 2>&1 ||
		{ mount_failed "$D/format.log" "fvfsd format failed"; return 1; }
	env ${FVFS_RACE_CONFIG:+FVFS_CONFIG="$FVFS_RACE_CONFIG"} "$BIN/fvfsd" mount --meta "$meta" --cache-dir "$D/cache" --foreground "$MNT" \
		</dev/null >"$D/mount.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	wait_mount "$MNT" 60 "$PID" || mount_failed "$D/mount.log" "fvfsd mount did not go live"
}
mount_fvfs-s3() { mount_fvfs --tier "s3=$(s3loc fvfs-s3)"; }
mount_fvfs-s3-wb() {
	printf '[upload]\nwriteback = true\n' >"$D/fvfs.toml"
	FVFS_RACE_CONFIG="$D/fvfs.toml" mount_fvfs --tier "s3=$(s3loc fvfs-s3-wb)"
}
mount_fvfs-local+s3() {
	mount_fvfs --tier "local=$D/local" --tier "s3=$(s3loc fvfs-local-s3)" || return 1
	# The S3 tier's bit in the blocks' tier masks: its index in the settings' tier list,
	# checked against `fvfsd tier list` (its first column).
	local idx bit
	idx="$(python3 -c 'import json,sqlite3,sys
c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
tiers = json.loads(c.execute("SELECT value FROM settings WHERE key = ?", ("settings",)).fetchone()[0])["tiers"]
print([t["name"] for t in tiers].index("s3"))' "$D/meta.db")" || idx=""
	bit="$("$BIN/fvfsd" tier list --meta "sqlite://$D/meta.db" 2>/dev/null | awk '$2 == "s3" {print $1}')" || bit=""
	if [[ -z $idx || -z $bit || $((1 << idx)) -ne $((bit)) ]]; then
		log "WARNING: cannot tell the S3 tier's bit (settings index '$idx', tier list '$bit'): no replication measure"
		return 0
	fi
	log "the S3 tier is tier $idx, mask $((bit)) ($bit in fvfsd tier list)"
	REPL=(--repl-db "$D/meta.db" --repl-mask "$((bit))")
}

# work CONTENDER WORKLOAD ARGS...: one workload, bounded; its JSON line (or the failure)
# goes to the results. A workload still running after its hard limit is stopped; one that
# not even SIGKILL ends is stuck in a request of the filesystem: the contender's daemon is
# killed (which aborts the FUSE connection) and its remaining workloads are not run.
work() {
	local c="$1" w="$2" hard rc=0 i
	shift 2
	if [[ -n $WEDGED ]]; then
		note "$c" "$w" ok:=false "error=not run: $WEDGED"
		return 0
	fi
	hard=$((DEADLINE + 120))
	[[ $w == bigwrite || $w == rss ]] && hard=$((DEADLINE + REPL_TIMEOUT + 120))
	log "$c: $w"
	python3 "$WORK_PY" "$MNT" "$w" --tag "$c" --deadline "$DEADLINE" --repl-timeout "$REPL_TIMEOUT" \
		"$@" </dev/null >"$D/$w.out" 2>"$D/$w.err" &
	WPID=$!
	for ((i = 0; i < hard * 10; i++)); do
		kill -0 "$WPID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$WPID" 2>/dev/null; then
		log "WARNING: $c $w still runs after ${hard}s; stopping it"
		stop_pid "$WPID" 0
		if kill -0 "$WPID" 2>/dev/null; then
			WEDGED="$w hung in the filesystem (unkillable after ${hard}s); the daemon was killed"
			log "WARNING: $c: $WEDGED"
			[[ -n $PID ]] && kill -KILL "$PID" 2>/dev/null
			stop_pid "$WPID" 30
		fi
		note "$c" "$w" ok:=false "error=stopped after ${hard}s"
		WPID=""
		return 0
	fi
	wait "$WPID" || rc=$?
	WPID=""
	sed 's/^/    /' "$D/$w.err" >&2
	if grep -q '"w": "' "$D/$w.out"; then
		tail -n 1 "$D/$w.out" >>"$RES"
		tail -n 1 "$D/$w.out" | cut -c1-400 >&2
	else
		note "$c" "$w" ok:=false "error=exit $rc: $(tail -n 1 "$D/$w.err" 2>/dev/null | cut -c1-200)"
	fi
	if [[ -n $PID ]] && ! kill -0 "$PID" 2>/dev/null; then
		WEDGED="the $c daemon (pid $PID) exited during $w"
		log "WARNING: $WEDGED"
	fi
}

race() { # race CONTENDER
	local c="$1"
	D="$W/$c"
	MNT="$D/mnt"
	PID=""
	REPL=()
	REASON=""
	WEDGED=""
	mkdir -p "$MNT"
	MNTS+=("$MNT")
	log "=== $c"
	if ! "mount_$c"; then
		log "$c: not run: $REASON"
		note "$c" mount ok:=false "error=$REASON"
		return 0
	fi
	note "$c" mount ok:=true
	local pid_arg=()
	[[ -n $PID ]] && pid_arg=(--pid "$PID")
	work "$c" bigwrite --src "$W/src" "${pid_arg[@]}" "${REPL[@]}"
	work "$c" read --src "$W/src"
	work "$c" small
	work "$c" stat
	work "$c" sqlite
	work "$c" append
	work "$c" rename
	work "$c" tree --tar "$W/tree.tar"
	if [[ -n $PID ]]; then
		# Every daemon's RSS (the targets are fvfs's). Idle: the replication queue drained
		# (fvfs-local+s3), then 10 s of nothing.
		work "$c" rss --pid "$PID" "${REPL[@]}" --settle 10
	fi
	log "$c: unmounting"
	unmount "$MNT"
	[[ -n $PID ]] && stop_pid "$PID" 120
	# Room for the next contender: this one's local copies (its S3 objects stay).
	if ! mounted "$MNT"; then rm -rf "$D/cache" "$D/local" "${MNT:?}"/* 2>/dev/null || true; fi
}

for c in "${CONTENDERS[@]}"; do
	want "$c" || continue
	race "$c"
done

# ---- raw PUT throughput of the same server: rclone copy of the same file
if want fvfs-local+s3; then
	if command -v rclone >/dev/null; then
		log "raw PUT: rclone copy of the ${SIZE_MIB} MiB file, --s3-upload-concurrency 8"
		cat "$W/src" >/dev/null # its reads come from the page cache, as the replication's do
		t0=$(now)
		if timeout 900 rclone --config "$W/rclone.conf" copy "$W/src" "race:$BUCKET/rawput/" \
			--s3-upload-concurrency 8 >"$W/rawput.log" 2>&1; then
			t1=$(now)
			secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')"
			note rawput rawput ok:=true "seconds:=$secs" \
				"mbps:=$(awk -v s="$secs" -v m="$SIZE_MIB" 'BEGIN {printf "%.1f", m * 1048576 / 1e6 / s}')"
		else
			note rawput rawput ok:=false "error=rclone copy failed: $(tail -n 1 "$W/rawput.log" | cut -c1-200)"
		fi
	else
		note rawput rawput ok:=false "error=rclone is not installed"
	fi
fi

# ---- the report
note env env "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -n ${RACE_OUT:-} ]]; then
	python3 "$WORK_PY" report "$RES" | tee "$RACE_OUT"
else
	python3 "$WORK_PY" report "$RES"
fi
