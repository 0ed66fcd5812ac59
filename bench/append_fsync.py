# bench/append_fsync.py: the fsync latency a database or a log sees. Appends N blocks of
# 4 KiB (random bytes) to PATH, each followed by fsync(2), and prints the latency p50 and
# p99 of write+fsync. Bounded: N appends (default 500) and at most 300 s.
#   python3 bench/append_fsync.py PATH [N]
# Used to profile the write path (issue 12): run it on a mount and on ext4 in the same
# minute, with `perf record -g -p <daemon pid>` or `strace -f -c -p <daemon pid>` beside it.
import os
import sys
import time

path = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
buf = os.urandom(4096)
lat = []
end = time.perf_counter() + 300
for _ in range(n):
    t = time.perf_counter()
    os.write(fd, buf)
    os.fsync(fd)
    lat.append(time.perf_counter() - t)
    if time.perf_counter() > end:
        break
os.close(fd)
lat.sort()
print(f"appends={len(lat)} p50_ms={lat[len(lat) // 2] * 1000:.2f} "
      f"p99_ms={lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000:.2f}")
