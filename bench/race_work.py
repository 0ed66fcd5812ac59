#!/usr/bin/env python3
# bench/race_work.py: the workloads of bench/race.sh (fvfs against its peers), one per call.
# Each call works in MOUNTDIR (files at its root; renames in a/ and b/, the source tree in
# tree/: directories only where a workload needs them) and prints ONE JSON line of results on
# stdout ({"c": TAG, "w": WORKLOAD, "ok": true, ...}); progress and loud warnings go to
# stderr. Every loop is bounded in count and in time (--deadline seconds; a workload that
# runs out of time stops and reports "timeout": true with what it did). Python 3.11 stdlib.
#
#   race_work.py MOUNTDIR bigwrite --src FILE [--pid PID] [--repl-db DB --repl-mask M]
#   race_work.py MOUNTDIR read --src FILE          cold read (after drop_caches), re-read, verify
#   race_work.py MOUNTDIR small [--n 1000]         4 KiB create+write+close in one directory
#   race_work.py MOUNTDIR stat [--n 1000] [--rounds 20]   os.stat of the small files
#   race_work.py MOUNTDIR sqlite [--n 2000]        WAL mode, default synchronous, 1 INSERT per tx
#   race_work.py MOUNTDIR append [--n 500]         4 KiB append + fsync, p50/p99
#   race_work.py MOUNTDIR rename [--n 2000]        a/f_i -> b/f_i
#   race_work.py MOUNTDIR tree --tar FILE          extract, drop caches, hash-verify every file
#   race_work.py MOUNTDIR rss --pid PID [--repl-db DB --repl-mask M] [--settle S]
# Common options: --tag NAME (the contender, copied into the JSON), --deadline SECONDS.
# Helpers for the shell:
#   race_work.py note TAG WORKLOAD KEY=STRING|KEY:=JSON...   print a JSON line
#   race_work.py report RESULTS.jsonl              the table and the targets of bench/race.sh
# Needs root for drop_caches (read, tree).
import argparse
import hashlib
import json
import os
import sqlite3
import sys
import tarfile
import threading
import time

MIB = 1 << 20
MB = 1_000_000


def log(msg):
    print(f"[race_work] {msg}", file=sys.stderr, flush=True)


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def proc_status(pid):
    """VmRSS and VmHWM of pid, in KiB (None when the process is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, val = line.split(":", 1)
                    out[key] = int(val.split()[0])
    except OSError:
        return None
    return out


class RssSampler:
    """VmRSS of pid every 0.2 s in a thread; keeps the peak."""

    def __init__(self, pid):
        self.pid = pid
        self.peak_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            st = proc_status(self.pid)
            if st and "VmRSS" in st:
                self.peak_kib = max(self.peak_kib, st["VmRSS"])
                self.samples += 1
            self._stop.wait(0.2)

    def __enter__(self):
        if self.pid:
            self._t.start()
        return self

    def __exit__(self, *exc):
        if self.pid:
            self._stop.set()
            self._t.join(5)


def lacking(db, mask):
    """(blocks in use, blocks in use without a copy on the tier of bit mask)."""
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        total = c.execute("SELECT COUNT(*) FROM blocks WHERE refcount>0").fetchone()[0]
        miss = c.execute(
            "SELECT COUNT(*) FROM blocks WHERE refcount>0 AND (tiers & ?)=0", (mask,)
        ).fetchone()[0]
        return total, miss
    finally:
        c.close()


def wait_replicated(db, mask, timeout):
    """Poll every 0.1 s until no block in use lacks the tier; (drained?, blocks, lacking)."""
    end = time.monotonic() + timeout
    while True:
        try:
            total, miss = lacking(db, mask)
        except sqlite3.Error as e:  # busy or locked for longer than the timeout: look again
            log(f"metadata poll: {e}")
            total, miss = -1, -1
        if miss == 0:
            return True, total, 0
        if time.monotonic() > end:
            return False, total, miss
        time.sleep(0.1)


def write_all(fd, view):
    while view:
        n = os.write(fd, view)
        view = view[n:]


def sha256_file(path, bufsize=MIB):
    h = hashlib.sha256()
    buf = bytearray(bufsize)
    mv = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    return h.hexdigest()


def pct(sorted_vals, p):
    return sorted_vals[min(len(sorted_vals) - 1, int(len(sorted_vals) * p))]


# ---------------------------------------------------------------- workloads


def w_bigwrite(a):
    with open(a.src, "rb") as f:
        data = f.read()  # in memory: the source's own reads are not timed
    size = len(data)
    path = os.path.join(a.mnt, "big")
    view = memoryview(data)
    res = {"bytes": size}
    end = time.monotonic() + a.deadline
    timed_out = False
    with RssSampler(a.pid) as rss:
        t0 = time.monotonic()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for off in range(0, size, MIB):
                write_all(fd, view[off : off + MIB])
                if time.monotonic() > end:
                    timed_out = True
                    break
            os.fsync(fd)
        finally:
            os.close(fd)
        t1 = time.monotonic()
        res["write_s"] = round(t1 - t0, 3)
        if timed_out:
            res["timeout"] = True
        else:
            res["write_mbps"] = round(size / MB / (t1 - t0), 1)
        if a.repl_db and not timed_out:
            drained, blocks, miss = wait_replicated(a.repl_db, a.repl_mask, a.repl_timeout)
            t2 = time.monotonic()
            res.update(repl_blocks=blocks, repl_drain_s=round(t2 - t1, 3))
            if drained:
                # From the first byte written to the last block on the tier: the write and
                # the replication run together.
                res["repl_s"] = round(t2 - t0, 3)
                res["repl_mbps"] = round(size / MB / (t2 - t0), 1)
            else:
                res["repl_timeout"] = True
                res["repl_lacking"] = miss
    if a.pid:
        res["rss_write_peak_kib"] = rss.peak_kib
        res["rss_samples"] = rss.samples
        st = proc_status(a.pid) or {}
        res["hwm_after_write_kib"] = st.get("VmHWM")
    return res


def timed_read(path, end):
    buf = bytearray(MIB)
    n_total = 0
    t0 = time.monotonic()
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            n_total += n
            if time.monotonic() > end:
                return n_total, time.monotonic() - t0, True
    return n_total, time.monotonic() - t0, False


def w_read(a):
    path = os.path.join(a.mnt, "big")
    size = os.path.getsize(a.src)
    end = time.monotonic() + a.deadline
    res = {"bytes": size}
    drop_caches()
    # The cold read, then the same file again at once (page cache warm).
    for kind, what in (("cold", "cold read"), ("warm", "re-read")):
        n, secs, to = timed_read(path, end)
        res[f"{kind}_s"] = round(secs, 3)
        if to or n != size:
            res.update(timeout=to, **{f"{kind}_bytes": n})
            if not to:
                res.update(ok=False, error=f"{what} got {n} of {size} bytes")
            return res
        res[f"{kind}_mbps"] = round(size / MB / secs, 1)
    # Untimed: the file's bytes are the source's.
    same = sha256_file(path) == sha256_file(a.src)
    res["verify_ok"] = same
    if not same:
        log(f"!!!!! MISMATCH: {path} differs from {a.src} !!!!!")
    return res


def w_small(a):
    d = a.mnt
    payloads = [os.urandom(4096) for _ in range(a.n)]  # distinct: no dedup shortcut
    end = time.monotonic() + a.deadline
    done = 0
    t0 = time.monotonic()
    for i in range(a.n):
        fd = os.open(os.path.join(d, f"f{i:05d}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            write_all(fd, memoryview(payloads[i]))
        finally:
            os.close(fd)
        done += 1
        if time.monotonic() > end:
            break
    secs = time.monotonic() - t0
    res = {"files": done, "seconds": round(secs, 3)}
    if done < a.n:
        res["timeout"] = True
    else:
        res["files_per_s"] = round(done / secs, 1)
    return res


def w_stat(a):
    d = a.mnt
    names = [os.path.join(d, f"f{i:05d}") for i in range(a.n)]
    end = time.monotonic() + a.deadline
    stats = 0
    rounds = 0
    t0 = time.monotonic()
    for _ in range(a.rounds):
        for p in names:
            os.stat(p)
        stats += len(names)
        rounds += 1
        if time.monotonic() > end:
            break
    secs = time.monotonic() - t0
    res = {"rounds": rounds, "stats": stats, "seconds": round(secs, 3)}
    if rounds < a.rounds:
        res["timeout"] = True
    else:
        res["stats_per_s"] = round(stats / secs, 1)
    return res


def w_sqlite(a):
    db = os.path.join(a.mnt, "race.db")
    payloads = [os.urandom(100) for _ in range(a.n)]
    c = sqlite3.connect(db, isolation_level=None, timeout=60)
    mode = c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    sync = c.execute("PRAGMA synchronous").fetchone()[0]
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
    end = time.monotonic() + a.deadline
    done = 0
    t0 = time.monotonic()
    for p in payloads:
        c.execute("BEGIN")
        c.execute("INSERT INTO t (v) VALUES (?)", (p,))
        c.execute("COMMIT")
        done += 1
        if time.monotonic() > end:
            break
    secs = time.monotonic() - t0
    rows = c.execute("SELECT COUNT(*) FROM t").fetchone()[0]
    integrity = c.execute("PRAGMA integrity_check").fetchone()[0]
    c.close()
    res = {"journal_mode": mode, "synchronous": sync, "tx": done, "elapsed_s": round(secs, 3),
           "rows": rows, "integrity": integrity}
    if done < a.n:
        res["timeout"] = True
    else:
        res.update(seconds=round(secs, 3), tx_per_s=round(done / secs, 1))
    if mode != "wal":
        res["ok"] = False
        res["error"] = f"journal_mode is {mode}, not wal"
    elif rows != done or integrity != "ok":
        res["ok"] = False
        res["error"] = f"{rows} rows after {done} commits, integrity_check: {integrity}"
        log(f"!!!!! SQLITE DAMAGE: {res['error']} !!!!!")
    return res


def w_append(a):
    fd = os.open(os.path.join(a.mnt, "append.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    buf = os.urandom(4096)
    lat = []
    end = time.monotonic() + a.deadline
    try:
        for _ in range(a.n):
            t = time.perf_counter()
            write_all(fd, memoryview(buf))
            os.fsync(fd)
            lat.append(time.perf_counter() - t)
            if time.monotonic() > end:
                break
    finally:
        os.close(fd)
    lat.sort()
    res = {"appends": len(lat), "max_ms": round(lat[-1] * 1000, 3), "total_s": round(sum(lat), 3)}
    if len(lat) < a.n:
        res["timeout"] = True
    else:
        res.update(p50_ms=round(pct(lat, 0.5) * 1000, 3), p99_ms=round(pct(lat, 0.99) * 1000, 3))
    return res


def w_rename(a):
    src = os.path.join(a.mnt, "a")
    dst = os.path.join(a.mnt, "b")
    os.mkdir(src)
    os.mkdir(dst)
    end = time.monotonic() + a.deadline
    t0 = time.monotonic()
    made = 0
    for i in range(a.n):  # untimed set-up: 1 KiB files
        with open(os.path.join(src, f"f{i:05d}"), "wb") as f:
            f.write(os.urandom(1024))
        made += 1
        if time.monotonic() > end:
            break
    setup_s = time.monotonic() - t0
    done = 0
    t0 = time.monotonic()
    for i in range(made):
        os.rename(os.path.join(src, f"f{i:05d}"), os.path.join(dst, f"f{i:05d}"))
        done += 1
        if time.monotonic() > end:
            break
    secs = time.monotonic() - t0
    left = len(os.listdir(src))
    moved = len(os.listdir(dst))
    res = {"renames": done, "elapsed_s": round(secs, 3), "setup_s": round(setup_s, 3),
           "left_in_a": left, "in_b": moved}
    if done < a.n:
        res["timeout"] = True
    else:
        res.update(seconds=round(secs, 3), renames_per_s=round(done / secs, 1))
    if left != made - done or moved != done:
        res["ok"] = False
        res["error"] = f"after {done} renames: {left} left in a/, {moved} in b/"
        log(f"!!!!! RENAME MISMATCH: {res['error']} !!!!!")
    return res


def w_tree(a):
    want = {}
    other = 0
    with tarfile.open(a.tar) as t:
        for m in t.getmembers():
            if m.isfile():
                want[m.name] = hashlib.sha256(t.extractfile(m).read()).hexdigest()
            elif not m.isdir():
                other += 1
    dest = os.path.join(a.mnt, "tree")
    os.mkdir(dest)
    t0 = time.monotonic()
    with tarfile.open(a.tar) as t:
        t.extractall(dest, filter="data")
    extract_s = time.monotonic() - t0
    drop_caches()  # the hashes are read back from the filesystem, not the page cache
    end = time.monotonic() + a.deadline
    mismatches = []
    checked = 0
    t0 = time.monotonic()
    for name, digest in want.items():
        p = os.path.join(dest, name)
        try:
            got = sha256_file(p, 256 << 10)
        except OSError as e:
            got = f"error: {e}"
        if got != digest:
            mismatches.append(name)
        checked += 1
        if time.monotonic() > end:
            break
    verify_s = time.monotonic() - t0
    res = {"files": len(want), "other_members": other, "extract_s": round(extract_s, 3),
           "checked": checked, "mismatches": len(mismatches)}
    if checked < len(want):
        res["timeout"] = True
    else:
        res["verify_s"] = round(verify_s, 3)
    if mismatches:
        for name in mismatches[:20]:
            log(f"!!!!! MISMATCH in the extracted tree: {name} !!!!!")
        log(f"!!!!! {len(mismatches)} of {len(want)} extracted files differ from the tarball !!!!!")
        res["ok"] = False
        res["error"] = f"{len(mismatches)} mismatched files"
    return res


def w_rss(a):
    res = {}
    if a.repl_db:
        drained, blocks, miss = wait_replicated(a.repl_db, a.repl_mask, a.deadline)
        res.update(repl_drained=drained, repl_blocks=blocks, repl_lacking=miss)
    time.sleep(a.settle)
    st = proc_status(a.pid)
    if st is None:
        return {"ok": False, "error": f"process {a.pid} is gone"}
    res.update(idle_rss_kib=st.get("VmRSS"), hwm_kib=st.get("VmHWM"))
    return res


WORKLOADS = {
    "bigwrite": w_bigwrite, "read": w_read, "small": w_small, "stat": w_stat,
    "sqlite": w_sqlite, "append": w_append, "rename": w_rename, "tree": w_tree, "rss": w_rss,
}


# ---------------------------------------------------------------- note and report


def note(argv):
    """KEY=VALUE is a string, KEY:=VALUE a JSON value (number, true, false)."""
    tag, workload, *kvs = argv
    out = {"c": tag, "w": workload}
    for kv in kvs:
        k, _, v = kv.partition("=")
        if k.endswith(":"):
            out[k[:-1]] = json.loads(v)
        else:
            out[k] = v
    print(json.dumps(out))


CONTENDERS = ["ext4", "rclone", "s3fs", "fvfs-s3", "fvfs-s3-wb", "fvfs-local+s3"]
FVFS = ["fvfs-s3", "fvfs-s3-wb", "fvfs-local+s3"]

# (label, workload, key, format, scale): the table's rows, in order.
ROWS = [
    ("big write + fsync (MB/s)", "bigwrite", "write_mbps", "{:.0f}", 1),
    ("cold read (MB/s)", "read", "cold_mbps", "{:.0f}", 1),
    ("re-read, page cache warm (MB/s)", "read", "warm_mbps", "{:.0f}", 1),
    ("4 KiB creates (files/s)", "small", "files_per_s", "{:.0f}", 1),
    ("stat (stats/s)", "stat", "stats_per_s", "{:.0f}", 1),
    ("SQLite WAL, 2000 tx (s)", "sqlite", "seconds", "{:.2f}", 1),
    ("append+fsync 4 KiB p50 (ms)", "append", "p50_ms", "{:.2f}", 1),
    ("append+fsync 4 KiB p99 (ms)", "append", "p99_ms", "{:.2f}", 1),
    ("renames a/ -> b/, 2000 (s)", "rename", "seconds", "{:.2f}", 1),
    ("source tree: extract (s)", "tree", "extract_s", "{:.2f}", 1),
    ("source tree: hash-verify, cold (s)", "tree", "verify_s", "{:.2f}", 1),
    ("source tree: files / mismatches", "tree", None, None, None),
    ("peak RSS, VmHWM (MB)", "rss", "hwm_kib", "{:.0f}", 1024 / MB),
    ("peak RSS sampled in big write (MB)", "bigwrite", "rss_write_peak_kib", "{:.0f}", 1024 / MB),
    ("idle RSS after the workloads (MB)", "rss", "idle_rss_kib", "{:.0f}", 1024 / MB),
    ("replication -> all on S3 (MB/s)", "bigwrite", "repl_mbps", "{:.0f}", 1),
    ("replication: last block on S3, s after the fsync", "bigwrite", "repl_drain_s", "{:.1f}", 1),
]


def report(path):
    recs = [json.loads(line) for line in open(path) if line.strip().startswith("{")]
    env = {}
    res = {}  # (contender, workload) -> record
    for r in recs:
        if r.get("w") == "env":
            env.update(r)
        else:
            res[(r.get("c"), r.get("w"))] = r
    wanted = [c for c in CONTENDERS if (c, "mount") in res]
    mounted = {c: res[(c, "mount")].get("ok") is True for c in wanted}

    def val(c, w, k):
        """The number, or None with a reason string for the cell."""
        if not mounted.get(c):
            return None, "–"
        r = res.get((c, w))
        if r is None:
            return None, "n/a"
        v = r.get(k)
        if v is not None:
            return v, None
        if r.get("timeout") or (k == "repl_mbps" and r.get("repl_timeout")):
            return None, "timeout"
        if r.get("ok") is False:
            return None, "err"
        return None, "n/a"

    lines = []
    p = lines.append
    size_mib = env.get("size_mib", "?")
    p(f"# fvfs race: {env.get('date', '')} on {env.get('host', '')}")
    p("")
    p(f"- fvfs {env.get('fvfs_rev', '?')} ({env.get('profile', '?')} build); "
      f"rclone {env.get('rclone_version', '?')}; s3fs {env.get('s3fs_version', '?')}; "
      f"kernel {env.get('kernel', '?')}; {env.get('cpus', '?')} CPUs")
    p(f"- ext4 column: a plain directory on {env.get('native_dir', '/var/tmp')}, filesystem "
      f"{env.get('native_fs', '?')} (stat -f: {env.get('native_statf', '?')})")
    p(f"- one S3 test server (fvfs-s3-server on loopback), one bucket, one prefix per contender")
    p(f"- big file {size_mib} MiB of random bytes, 1 MiB writes, one fsync, then close; "
      "MB = 10^6 bytes")
    p("- cold read = after `sync; echo 3 > /proc/sys/vm/drop_caches`, no remount: each "
      "contender keeps its own local data as a user would (rclone's VFS cache, fvfs's hot "
      "tier and block cache, defaults otherwise); re-read = the same file again at once")
    p("- peers with their defaults but for: rclone mount --vfs-cache-mode full; s3fs -o "
      "use_path_request_style,retries=1 (the test server answers 500 to a HEAD of a directory "
      "key; with the default 5 retries each such call takes minutes). fvfs with its defaults "
      "(no config file; block cache in the scratch directory)")
    p(f"- load average at the start / end: {env.get('loadavg_start', '?')} / "
      f"{env.get('loadavg_end', '?')} (other work on the machine skews every column)")
    p("- fsync returns: ext4 on disk; rclone (--vfs-cache-mode full) once in its local cache, "
      "uploaded later; s3fs after the upload; fvfs-s3 once on S3; fvfs-local+s3 once on the "
      "local tier, replicated to S3 in the background")
    p("- replication = from the first byte of the big write to the last block on the S3 tier "
      "(the write and the copy overlap)")
    p("")
    cols = [c for c in CONTENDERS if c in mounted]
    head = "| workload | " + " | ".join(cols) + " |"
    p(head)
    p("|" + "---|" * (len(cols) + 1))
    for label, w, k, fmt, scale in ROWS:
        cells = []
        for c in cols:
            if k is None:  # files / mismatches
                f, why = val(c, w, "files")
                if f is None:
                    cells.append(why)
                else:
                    mm = res[(c, w)].get("mismatches")
                    cells.append(f"{f} / {mm}" + (" !!!" if mm else ""))
                continue
            if w == "rss" or k == "rss_write_peak_kib":
                if c == "ext4":  # no daemon
                    cells.append("")
                    continue
            if k in ("repl_mbps", "repl_drain_s") and c != "fvfs-local+s3":
                cells.append("")
                continue
            v, why = val(c, w, k)
            cells.append(why if v is None else fmt.format(v * scale))
        p(f"| {label} | " + " | ".join(cells) + " |")
    raw = res.get(("rawput", "rawput"), {})
    raw_mbps = raw.get("mbps") if raw.get("ok") else None
    p("")
    if raw_mbps is not None:
        p(f"raw PUT (rclone copy of the same {size_mib} MiB file, --s3-upload-concurrency 8, "
          f"same server): {raw_mbps:.0f} MB/s ({raw.get('seconds')} s)")
    else:
        p(f"raw PUT (rclone copy): not measured ({raw.get('error', 'not run')})")
    for c in cols:
        if not mounted[c]:
            p(f"- {c}: not run: {res[(c, 'mount')].get('error', '?')}")
    for (c, w), r in sorted(res.items(), key=lambda kv: str(kv[0])):
        if w in ("mount", "env", "rawput") or c not in mounted or not mounted[c]:
            continue
        if r.get("ok") is False or r.get("timeout") or r.get("repl_timeout"):
            why = r.get("error") or "timed out"
            if c == "s3fs" and "No such file or directory" in why and w in ("rename", "tree"):
                why += " (its mkdir fails on this test server: see the s3fs note above)"
            p(f"- {c} {w}: {why}")
        if r.get("verify_ok") is False:
            p(f"- {c} {w}: !!! the big file read back differs from its source !!!")
        if w == "sqlite" and r.get("journal_mode") and r.get("synchronous") != 2:
            p(f"- {c} sqlite: synchronous={r.get('synchronous')} (not FULL)")

    # ---- targets
    p("")
    p("## targets (ratios from this run)")
    p("")
    p("| contender | target | measured | result |")
    p("|---|---|---|---|")
    tally = {"PASS": 0, "FAIL": 0, "n/a": 0}

    def target(c, text, ok, measured):
        verdict = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        tally[verdict] += 1
        p(f"| {c} | {text} | {measured} | {verdict} |")

    def ratio(c, w, k, ref, r_w=None, r_k=None, at_least=None, at_most=None, unit=""):
        r_w = r_w or w
        r_k = r_k or k
        a_, why_a = val(c, w, k)
        b_, why_b = val(ref, r_w, r_k)
        if a_ is None or b_ is None or not b_:
            return None, (f"{why_a if a_ is None else f'{a_:g}'} vs {ref} "
                          f"{why_b if b_ is None else f'{b_:g}'}")
        q = a_ / b_
        ok = (at_least is None or q >= at_least) and (at_most is None or q <= at_most)
        return ok, f"{a_:g}{unit} / {b_:g}{unit} = {q:.2f}x"

    def absolute(c, w, k, at_least=None, below=None, scale=1, unit=""):
        a_, why = val(c, w, k)
        if a_ is None:
            return None, why
        v = a_ * scale
        ok = (at_least is None or v >= at_least) and (below is None or v < below)
        return ok, f"{v:.0f}{unit}"

    c = "fvfs-local+s3"
    target(c, "big write ≥ 0.8 × ext4", *ratio(c, "bigwrite", "write_mbps", "ext4", at_least=0.8))
    target(c, "big write ≥ 2 × rclone", *ratio(c, "bigwrite", "write_mbps", "rclone", at_least=2))
    target(c, "4 KiB creates ≥ 4 × rclone", *ratio(c, "small", "files_per_s", "rclone", at_least=4))
    target(c, "4 KiB creates ≥ 3000/s", *absolute(c, "small", "files_per_s", at_least=3000, unit="/s"))
    target(c, "SQLite WAL time ≤ 2 × ext4", *ratio(c, "sqlite", "seconds", "ext4", at_most=2, unit=" s"))
    target(c, "append+fsync p50 ≤ 2 × ext4", *ratio(c, "append", "p50_ms", "ext4", at_most=2, unit=" ms"))
    target(c, "append+fsync p99 ≤ 2 × ext4", *ratio(c, "append", "p99_ms", "ext4", at_most=2, unit=" ms"))
    target(c, "renames time ≤ 2 × ext4", *ratio(c, "rename", "seconds", "ext4", at_most=2, unit=" s"))
    target(c, "stat ≥ 50000/s", *absolute(c, "stat", "stats_per_s", at_least=50000, unit="/s"))
    c = "fvfs-s3"
    target(c, "big write ≥ 1.5 × rclone", *ratio(c, "bigwrite", "write_mbps", "rclone", at_least=1.5))
    target(c, "4 KiB creates ≥ 2 × rclone", *ratio(c, "small", "files_per_s", "rclone", at_least=2))
    target(c, "SQLite WAL time ≤ 2 × rclone", *ratio(c, "sqlite", "seconds", "rclone", at_most=2, unit=" s"))
    # The optional write-back mode over S3 alone (acknowledged from the local journal).
    c = "fvfs-s3-wb"
    target(c, "4 KiB creates ≥ 2 × rclone", *ratio(c, "small", "files_per_s", "rclone", at_least=2))
    target(c, "SQLite WAL time ≤ 2 × rclone", *ratio(c, "sqlite", "seconds", "rclone", at_most=2, unit=" s"))
    for c in FVFS:
        target(c, "cold read ≥ 2 × rclone", *ratio(c, "read", "cold_mbps", "rclone", at_least=2))
        target(c, "re-read ≥ 0.8 × ext4", *ratio(c, "read", "warm_mbps", "ext4", at_least=0.8))
        target(c, "peak RSS (VmHWM) < 200 MB", *absolute(c, "rss", "hwm_kib", below=200, scale=1024 / MB, unit=" MB"))
        target(c, "idle RSS < 30 MB", *absolute(c, "rss", "idle_rss_kib", below=30, scale=1024 / MB, unit=" MB"))
    c = "fvfs-local+s3"
    rv, why = val(c, "bigwrite", "repl_mbps")
    if rv is None or raw_mbps is None:
        target(c, "replication ≥ 0.8 × raw PUT", None,
               f"{why if rv is None else f'{rv:g}'} vs raw PUT "
               f"{'–' if raw_mbps is None else f'{raw_mbps:g}'}")
    else:
        q = rv / raw_mbps
        target(c, "replication ≥ 0.8 × raw PUT", q >= 0.8, f"{rv:g} / {raw_mbps:g} MB/s = {q:.2f}x")
    p("")
    p(f"targets: {tally['PASS']} PASS, {tally['FAIL']} FAIL, {tally['n/a']} n/a (not measured)")
    print("\n".join(lines))


# ---------------------------------------------------------------- main


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "note":
        return note(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "report":
        return report(sys.argv[2])
    ap = argparse.ArgumentParser(description="one workload of bench/race.sh")
    ap.add_argument("mnt")
    ap.add_argument("workload", choices=sorted(WORKLOADS))
    ap.add_argument("--tag", default="")
    ap.add_argument("--deadline", type=float, default=600)
    ap.add_argument("--src")
    ap.add_argument("--tar")
    ap.add_argument("--pid", type=int)
    ap.add_argument("--n", type=int)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--repl-db")
    ap.add_argument("--repl-mask", type=int, default=0)
    ap.add_argument("--repl-timeout", type=float, default=600)
    ap.add_argument("--settle", type=float, default=5)
    a = ap.parse_args()
    if a.n is None:
        a.n = {"small": 1000, "stat": 1000, "sqlite": 2000, "append": 500, "rename": 2000}.get(
            a.workload, 0)
    res = {"c": a.tag, "w": a.workload, "ok": True}
    try:
        res.update(WORKLOADS[a.workload](a))
    except Exception as e:  # one JSON line even on failure: the race goes on
        res.update(ok=False, error=f"{type(e).__name__}: {e}")
        log(f"{a.tag} {a.workload}: {res['error']}")
    print(json.dumps(res), flush=True)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
