# bench/music_measure.py: the measures of bench/music.sh on a real `fvfsd music mount`.
# Owns: starting the mount (timed from spawn to live, then its first stat of the root;
# once cold, once warm, with the mount's own start-up steps), its RSS (at mount, once its start-up work is done, and the peak), stat / readdir /
# open latencies over random paths of the view (cold: page cache dropped and a fresh
# mount; then warm: the same paths again), root listing (first entry, whole, again, and
# the same names on ext4), search over the control socket
# (newline-delimited JSON-RPC 2.0 on its Unix socket, one connection), and sequential
# reads of the large files from the origin (cache cleared), from the cache, and from
# ext4 directly. Writes KEY=VALUE lines to stdout. Every loop is bounded in count and time.
#   python3 bench/music_measure.py FVFSD META_URL META_DB MNT SOCK VIEW LIBFILES LOG
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import time

fvfsd, meta_url, meta_db, mnt, sock_path, view, libfiles, log = sys.argv[1:9]
SAMPLES = 2000
rng = random.Random(7)
out = {}


def say(k, v):
    out[k] = v
    print(f"{k}={v}", flush=True)


def drop():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as d:
        d.write("3")


def pct(v, p):
    s = sorted(v)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


def ms(v):
    return f"{v * 1000:.3f}"


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) // 1024  # MiB
    return -1


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])


def mounted():
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == mnt for line in f)


# --- the view's paths, from the metadata (read-only, before the mount)
db = sqlite3.connect(f"file:{meta_db}?mode=ro", uri=True)
vid, gen = db.execute("SELECT id, generation FROM music_views WHERE name = ?", (view,)).fetchone()
dirs = {d: (p, n) for p, n, d in db.execute(
    "SELECT parent, name, dir FROM music_entries WHERE view = ? AND gen = ? AND dir IS NOT NULL",
    (vid, gen))}
ntracks = db.execute("SELECT COUNT(*) FROM music_entries WHERE view = ? AND gen = ? AND track "
                     "IS NOT NULL", (vid, gen)).fetchone()[0]


def dir_path(d):
    parts = []
    for _ in range(64):
        if d == 1:
            break
        p, n = dirs[d]
        parts.append(n)
        d = p
    return os.path.join(mnt, *reversed(parts))


maxid = db.execute("SELECT MAX(id) FROM music_tracks").fetchone()[0]


def entries(k):
    """k entries (parent, name) of random tracks the view shows (by the track index)."""
    rows = []
    for _ in range(50 * k):
        if len(rows) == k:
            break
        r = db.execute("SELECT parent, name FROM music_entries WHERE view = ? AND gen = ? "
                       "AND track = ?", (vid, gen, rng.randint(1, maxid))).fetchone()
        if r:
            rows.append(r)
    return rows


t0 = time.perf_counter()
stat_set = [os.path.join(dir_path(p), n) for p, n in entries(SAMPLES)]
open_set = [os.path.join(dir_path(p), n) for p, n in entries(SAMPLES)]
readdir_set = [dir_path(p) for p, _ in entries(SAMPLES)]
big = [os.path.join(dir_path(p), n) for p, n in db.execute(
    "SELECT e.parent, e.name FROM music_entries e JOIN music_tracks t ON t.id = e.track "
    "WHERE e.view = ? AND e.gen = ? AND t.size > 100000000 ORDER BY t.path", (vid, gen))]
big_src = [os.path.join(libfiles, r[0]) for r in db.execute(
    "SELECT path FROM music_tracks WHERE size > 100000000 ORDER BY path")]
words = [w for (t,) in db.execute("SELECT title || ' ' || artist || ' ' || album FROM "
                                  "music_tracks WHERE id % 997 = 0") for w in t.split()]
db.close()
say("view_tracks", ntracks)
say("view_dirs", len(dirs))
print(f"# paths sampled in {time.perf_counter() - t0:.1f} s", flush=True)

# --- mount: spawn -> live -> first stat of the root answered. First cold (page cache
# dropped: the binary, the database and the search index read from disk, as after a
# boot), then unmounted and mounted again warm (a remount); the second mount is the one
# measured below. Each start-up step's time comes from the mount's `fvfs::startup` log.
def start_mount(phase):
    logf = open(log, "ab")
    start = logf.tell()
    t_spawn = time.perf_counter()
    proc = subprocess.Popen([fvfsd, "music", "mount", "--meta", meta_url, "--view", view,
                             "--control", sock_path, "--cache-window", "4M", mnt],
                            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                            env=dict(os.environ,
                                     FVFS_LOG="warn,fvfs::startup=debug,fvfs_vfs::backup=info"))
    deadline = t_spawn + 120
    while not mounted():
        if proc.poll() is not None or time.perf_counter() > deadline:
            sys.exit(f"the music mount did not come up (exit {proc.poll()}), see {log}")
        time.sleep(0.0005)
    t_live = time.perf_counter()
    os.stat(mnt)
    t_stat = time.perf_counter()
    say(f"mount_{phase}_live_ms", ms(t_live - t_spawn))
    say(f"mount_{phase}_first_stat_ms", ms(t_stat - t_live))
    time.sleep(0.2)
    logf.flush()
    with open(log, "rb") as f:
        f.seek(start)
        steps = []
        for line in f.read().decode(errors="replace").splitlines():
            if "fvfs::startup" in line and 'step="' in line:
                step = line.split('step="', 1)[1].split('"', 1)[0]
                at = line.split('ms="', 1)[1].split('"', 1)[0]
                steps.append(f"{step} {at}")
    say(f"mount_{phase}_steps", "; ".join(steps))
    return proc


drop()
proc = start_mount("cold")
subprocess.run(["umount", mnt], check=True)
proc.wait(timeout=60)
proc = start_mount("warm")
say("mount_pid", proc.pid)
say("rss_at_mount_mib", status(proc.pid, "VmRSS"))
# Start-up work in the background (the search index's catch-up sync): wait until the
# process has used no CPU for 2 s (at most 600 s), and time it.
last, quiet, t_settle0 = cpu_ticks(proc.pid), 0, time.perf_counter()
while quiet < 20 and time.perf_counter() - t_settle0 < 600:
    time.sleep(0.1)
    now = cpu_ticks(proc.pid)
    quiet = quiet + 1 if now == last else 0
    last = now
say("startup_work_s", f"{time.perf_counter() - t_settle0 - 2:.1f}")
say("rss_idle_mib", status(proc.pid, "VmRSS"))


def timed(paths, op, budget=120):
    lat, end = [], time.perf_counter() + budget
    for p in paths:
        t = time.perf_counter()
        op(p)
        lat.append(time.perf_counter() - t)
        if time.perf_counter() > end:
            break
    return lat


def do_open(p):
    os.close(os.open(p, os.O_RDONLY))


def do_readdir(p):
    with os.scandir(p) as it:
        for _ in it:
            pass


drop()
for phase in ("cold", "warm"):
    for name, paths, op in (("stat", stat_set, os.stat), ("open", open_set, do_open),
                            ("readdir", readdir_set, do_readdir)):
        if name == "readdir" and phase == "cold":
            for p in paths:  # the directories looked up, their listings still cold
                os.stat(p)
        lat = timed(paths, op)
        say(f"{name}_{phase}_n", len(lat))
        say(f"{name}_{phase}_p50_ms", ms(pct(lat, 50)))
        say(f"{name}_{phase}_p99_ms", ms(pct(lat, 99)))
# The root (every artist): the first listing of this mount (time to its first entry, and
# to its end), then again (the kernel keeps a view's listings); the same names in an
# ext4 directory, listed the same way (its first listing after a drop of the caches).
def first_entry(p):
    t = time.perf_counter()
    with os.scandir(p) as it:
        next(it)
        first = time.perf_counter() - t
        for _ in it:
            pass
    return first, time.perf_counter() - t


root_first = first_entry(mnt)
root_again = timed([mnt] * 5, do_readdir)
root_names = os.listdir(mnt)
say("readdir_root_entries", len(root_names))
say("readdir_root_first_entry_ms", ms(root_first[0]))
say("readdir_root_first_ms", ms(root_first[1]))
say("readdir_root_again_p50_ms", ms(pct(root_again, 50)))
ext4_dir = os.path.join(os.path.dirname(mnt), "ext4-root")
os.makedirs(ext4_dir, exist_ok=True)
for n in root_names:
    open(os.path.join(ext4_dir, n), "w").close()
drop()
ext4_first = first_entry(ext4_dir)
ext4_again = timed([ext4_dir] * 5, do_readdir)
say("readdir_root_ext4_first_ms", ms(ext4_first[1]))
say("readdir_root_ext4_again_p50_ms", ms(pct(ext4_again, 50)))

# --- search over the control socket
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sock_path)
rf = s.makefile("rb")
seq = 0


def rpc(method, params):
    global seq
    seq += 1
    s.sendall((json.dumps({"jsonrpc": "2.0", "id": seq, "method": method,
                           "params": params}) + "\n").encode())
    ans = json.loads(rf.readline())
    if "error" in ans:
        raise RuntimeError(f"{method} {params}: {ans['error']}")
    return ans["result"]


def typo(w):
    if len(w) < 5:
        return w
    i = rng.randrange(1, len(w) - 1)
    return w[:i] + w[i + 1] + w[i] + w[i + 2:]


queries = []
for i in range(300):
    w = rng.choice(words)
    kind = i % 6
    if kind == 0:
        queries.append(w)
    elif kind == 1:
        queries.append(w[:3])
    elif kind == 2:
        queries.append(typo(w.lower()))
    elif kind == 3:
        queries.append(f"{w} {rng.choice(words)}")
    elif kind == 4:
        queries.append(rng.choice([f"artist:{w}", f"album:{w}", f"title:{w}",
                                   f"year:{rng.randint(1960, 2025)}", "genre:jazz"]))
    else:
        queries.append(rng.choice(["zzqx", "björk", "東京", "ночь", "greatest hits",
                                   "live 1999", f"{w[:2]}"]))
for phase in ("first", "again"):
    lat, hits, end = [], 0, time.perf_counter() + 300
    for q in queries:
        t = time.perf_counter()
        hits += len(rpc("search", {"query": q, "limit": 50}))
        lat.append(time.perf_counter() - t)
        if time.perf_counter() > end:
            break
    say(f"search_{phase}_n", len(lat))
    say(f"search_{phase}_p50_ms", ms(pct(lat, 50)))
    say(f"search_{phase}_p99_ms", ms(pct(lat, 99)))
    say(f"search_{phase}_max_ms", ms(max(lat)))
    say(f"search_{phase}_mean_hits", f"{hits / len(lat):.1f}")


# --- sequential reads: the origin (cache cleared), the cache, ext4 directly
def read_all(p):
    n = 0
    with open(p, "rb", buffering=0) as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return n
            n += len(b)


def mbps(paths):
    rates = []
    for p in paths:
        t = time.perf_counter()
        n = read_all(p)
        rates.append(n / (1 << 20) / (time.perf_counter() - t))
    return rates


# The mount's first metadata base (at start: a copy and compression of the whole
# database, then its upload) would share the disk and CPU with the reads: wait for it
# (at most 5 min).
t_wait = time.perf_counter()
while time.perf_counter() - t_wait < 300:
    with open(log, "rb") as f:
        if b"metadata generation started" in f.read():
            break
    time.sleep(0.5)
say("waited_for_backup_s", f"{time.perf_counter() - t_wait:.1f}")
rpc("cache.clear", {})
drop()
origin = mbps(big)
drop()
cached = mbps(big)
drop()
ext4 = mbps(big_src)
for k, v in (("read_origin", origin), ("read_cache", cached), ("read_ext4", ext4)):
    say(f"{k}_mbps", "/".join(f"{x:.0f}" for x in v))
    say(f"{k}_mbps_mean", f"{sum(v) / len(v):.0f}")
say("cache_stats", json.dumps(rpc("cache.stats", {}), separators=(",", ":")))
s.close()
say("rss_peak_mib", status(proc.pid, "VmHWM"))
say("rss_end_mib", status(proc.pid, "VmRSS"))
