#!/usr/bin/env python3
# bench/ship_work.py: the workload, the object census and the report of bench/shipping.sh
# (what continuous metadata shipping costs). Python 3.11 stdlib; every loop is bounded in
# count and in time.
#
#   ship_work.py ops MNT --secs S [--max N] [--tag T]   metadata operations for S seconds
#   ship_work.py objects DIR [--tag T] [--phase P]      shipped objects under DIR (the durable
#                                                       tier's meta/gen/): bases, segments, bytes
#   ship_work.py status FILE [--tag T] [--phase P]      the mount's shipping status (<db>.ship.json)
#   ship_work.py report RESULTS.jsonl                   the tables of bench/shipping.sh
#
# `ops` counts metadata operations as the system calls that change the namespace or
# attributes: each round creates a file and writes 4 KiB into it (1: the create, its size
# and mtime commit at close), chmods it (1), renames it (1), and every second round unlinks
# the previous file (0.5); a directory every 100 rounds (0.01). It prints one JSON line.
import argparse
import json
import os
import sys
import time


def ops(a):
    root = os.path.join(a.mnt, f"ops-{a.tag or 'x'}")
    os.makedirs(root, exist_ok=True)
    buf = os.urandom(4096)
    n = 0
    i = 0
    d = root
    t0 = time.monotonic()
    end = t0 + a.secs
    while time.monotonic() < end and n < a.max:
        if i % 100 == 0:
            d = os.path.join(root, f"d{i // 100}")
            os.mkdir(d)
            n += 1
        p = os.path.join(d, f"f{i}")
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, buf)
        finally:
            os.close(fd)
        os.chmod(p, 0o600)
        q = os.path.join(d, f"g{i}")
        os.rename(p, q)
        n += 3
        if i % 2 == 1:
            os.unlink(os.path.join(d, f"g{i - 1}"))
            n += 1
        i += 1
    secs = time.monotonic() - t0
    return {"rounds": i, "ops": n, "secs": round(secs, 3), "ops_per_s": round(n / secs, 1)}


def objects(a):
    bases = segs = base_bytes = seg_bytes = 0
    for dirpath, _, names in os.walk(a.dir):
        for name in names:
            size = os.path.getsize(os.path.join(dirpath, name))
            if name == "base.db.zst":
                bases += 1
                base_bytes += size
            elif name.startswith("log-") and name.endswith(".wal.zst"):
                segs += 1
                seg_bytes += size
    return {"bases": bases, "base_bytes": base_bytes, "segments": segs, "segment_bytes": seg_bytes}


def status(a):
    with open(a.file, "rb") as f:
        return json.load(f)


def fmt(v, nd=0):
    if v is None:
        return "–"
    if isinstance(v, float) and nd:
        return f"{v:,.{nd}f}"
    return f"{v:,.0f}"


def report(path):
    rows = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
    by = {}
    for r in rows:
        by.setdefault((r.get("c"), r.get("w"), r.get("phase")), []).append(r)

    def one(tag, w, phase=None):
        got = by.get((tag, w, phase)) or []
        return got[-1] if got else None

    out = []
    # --- the cost of shipping, from the "on" run
    busy = one("on", "ops")
    before = one("on", "objects", "before")
    after_busy = one("on", "objects", "busy")
    after_idle = one("on", "objects", "idle")
    st_before = one("on", "status", "before")
    st_busy = one("on", "status", "busy")
    idle = one("on", "idle")
    if busy and before and after_busy and st_before and st_busy:
        mins = busy["secs"] / 60
        segs = after_busy["segments"] - before["segments"]
        bases = after_busy["bases"] - before["bases"]
        zbytes = (after_busy["segment_bytes"] - before["segment_bytes"]) + (
            after_busy["base_bytes"] - before["base_bytes"])
        raw = st_busy["shipped_bytes"] - st_before["shipped_bytes"]
        k = busy["ops"] / 1000
        out.append("Cost of shipping (the `on` mount, `[backup] max_lag_secs = 10`):")
        out.append("")
        out.append("| measure | value |")
        out.append("|---|---:|")
        out.append(f"| metadata operations (busy phase) | {busy['ops']:,} in {busy['secs']:.1f} s "
                   f"({busy['ops_per_s']:,.0f}/s) |")
        out.append(f"| PUTs during the busy phase | {segs + bases} ({segs} segments, {bases} bases) |")
        out.append(f"| PUTs per minute, busy | {(segs + bases) / mins:.1f} |")
        if idle and after_idle:
            isegs = (after_idle["segments"] + after_idle["bases"]) - (
                after_busy["segments"] + after_busy["bases"])
            out.append(f"| PUTs per minute, idle ({idle['secs']:.0f} s after) | "
                       f"{isegs / (idle['secs'] / 60):.1f} |")
        out.append(f"| log bytes shipped per 1,000 operations (merged pages, before zstd) | "
                   f"{raw / k / 1024:,.1f} KiB |")
        out.append(f"| bytes uploaded (zstd) per 1,000 operations | {zbytes / k / 1024:,.1f} KiB |")
        out.append(f"| the base at mount (zstd) | {before['base_bytes'] / 1024:,.1f} KiB |")
        out.append("")
    # --- on vs off
    def side(tag):
        s = {}
        o = one(tag, "ops")
        if o:
            s["metadata operations (/s)"] = o["ops_per_s"]
        q = one(tag, "sqlite")
        if q and "tx_per_s" in q:
            s["SQLite WAL, 2000 transactions (s)"] = q["seconds"]
        m = one(tag, "rss")
        if m:
            s["mount peak RSS after the busy phase (MiB)"] = m["hwm_kib"] / 1024
        p = one(tag, "append")
        if p and "p50_ms" in p:
            s["4 KiB append + fsync p50 (ms)"] = p["p50_ms"]
            s["4 KiB append + fsync p99 (ms)"] = p["p99_ms"]
        for r in by.get((tag, "run", None), []):
            f = r["fvfs"]
            n = r.get("round", 0)
            for key, label in [("seq_write_mib_s", "seq write + fsync (MiB/s)"),
                               ("cold_read_mib_s", "cold read (MiB/s)"),
                               ("reread_mib_s", "re-read (MiB/s)"),
                               ("create_per_s", "create+write+close 4 KiB (/s)"),
                               ("stat_per_s", "stat (/s)"),
                               ("read_per_s", "open+read+close (/s)"),
                               ("delete_per_s", "unlink (/s)")]:
                s[f"run.sh r{n}: {label}"] = f[key]
        return s

    on, off = side("on"), side("off")
    keys = [k for k in off if k in on] + [k for k in on if k not in off]
    if keys:
        out.append("Shipping on vs off (same run, hot local tier + S3):")
        out.append("")
        out.append("| measure | off | on | on / off |")
        out.append("|---|---:|---:|---:|")
        for k in keys:
            a, b = off.get(k), on.get(k)
            ratio = f"{b / a:.2f}" if a and b else "–"
            nd = 2 if (a is not None and a < 100) or (b is not None and b < 100) else 0
            out.append(f"| {k} | {fmt(a, nd)} | {fmt(b, nd)} | {ratio} |")
    print("\n".join(out))
    return 0


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "report":
        return report(sys.argv[2])
    ap = argparse.ArgumentParser(description="bench/shipping.sh helpers")
    ap.add_argument("what", choices=["ops", "objects", "status"])
    ap.add_argument("path")
    ap.add_argument("--secs", type=float, default=60)
    ap.add_argument("--max", type=int, default=500_000)
    ap.add_argument("--tag", default="")
    ap.add_argument("--phase")
    a = ap.parse_args()
    res = {"c": a.tag, "w": a.what}
    if a.phase:
        res["phase"] = a.phase
    if a.what == "ops":
        a.mnt = a.path
        res.update(ops(a))
    elif a.what == "objects":
        a.dir = a.path
        res.update(objects(a))
    else:
        a.file = a.path
        res.update(status(a))
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
