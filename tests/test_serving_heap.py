"""glibc's mmap threshold fixed by `workbench serve` (workbench/serving/heap.py): buffers
the size of a request body, allocated and freed by several threads, give their memory
back. Without the fix the same run kept 20-43 MiB (dynamic threshold, per-thread
arenas). Each run is a fresh interpreter, so the threshold starts at glibc's default."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workbench.serving.heap import return_large_buffers

REPO = Path(__file__).resolve().parent.parent

PROBE = textwrap.dedent(
    """
    import random, sys, threading
    from workbench.serving.heap import return_large_buffers

    def rss_mib():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024

    if sys.argv[1] == "fixed":
        assert return_large_buffers()
    block = bytearray(600_000)
    del block  # unfixed, this freed block raises glibc's threshold past 600 kB
    start = rss_mib()

    survivors = []

    def bodies(seed):
        rnd = random.Random(seed)
        live = []
        for _ in range(400):  # request bodies of 600 kB, 20 alive at a time
            live.append(bytes(600_000 + rnd.randrange(1000)))
            if len(live) > 20:
                live.pop(rnd.randrange(len(live)))
        survivors.append(bytes(1000))  # a small object that outlives them (a log line)

    threads = [threading.Thread(target=bodies, args=(s,)) for s in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print(rss_mib() - start)
    """
)


def _grown_mib(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return float(out.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_request_sized_buffers_give_their_memory_back():
    assert return_large_buffers()
    fixed = _grown_mib("fixed")
    assert fixed < 4.0, f"resident memory grew {fixed:.1f} MiB after the buffers were freed"
