#!/usr/bin/env python3
"""Metadata operations per second, mdtest-style, in one directory per client.

usage: meta_work.py ROOT[:ROOT...] CLIENTS FILES

Each of CLIENTS processes works in ROOT/c<i>, client i under the (i mod n)-th ROOT (one
ROOT per mount of one filesystem measures several mounts at once): creates FILES empty files (open O_CREAT,
close), stats each, renames each, unlinks each; the phases are separated by a barrier so
that every client runs the same phase at once. Prints one JSON line per phase: the
slowest client's rate (ops/s per client, as mdtest reports) and the total.
"""
import json
import multiprocessing as mp
import os
import sys
import time

PHASES = ["create", "stat", "rename", "unlink"]


def client(root, idx, files, barrier, out):
    d = os.path.join(root, f"c{idx}")
    os.makedirs(d, exist_ok=True)
    names = [os.path.join(d, f"f{i:07d}") for i in range(files)]
    moved = [n + ".r" for n in names]
    times = {}
    for phase in PHASES:
        barrier.wait()
        t0 = time.perf_counter()
        if phase == "create":
            for n in names:
                os.close(os.open(n, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))
        elif phase == "stat":
            for n in names:
                os.stat(n)
        elif phase == "rename":
            for a, b in zip(names, moved):
                os.rename(a, b)
        else:
            for b in moved:
                os.unlink(b)
        times[phase] = time.perf_counter() - t0
    os.rmdir(d)
    out.put((idx, times))


def main():
    roots, clients, files = sys.argv[1].split(":"), int(sys.argv[2]), int(sys.argv[3])
    barrier = mp.Barrier(clients)
    out = mp.Queue()
    procs = [
        mp.Process(target=client, args=(roots[i % len(roots)], i, files, barrier, out))
        for i in range(clients)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    for phase in PHASES:
        slowest = max(t[phase] for _, t in results)
        print(json.dumps({
            "phase": phase,
            "clients": clients,
            "files_per_client": files,
            "per_client_ops": round(files / slowest),
            "total_ops": round(clients * files / slowest),
        }), flush=True)


if __name__ == "__main__":
    main()
