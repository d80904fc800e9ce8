"""The peak memory of a process tree while a test runs: sampled on a thread, summed over the tree.

    with TreeMemory(popen.pid) as memory:
        ...wait for the run to end...
    assert memory.peak_pss < 300 * MiB, memory.describe()

Two sums per sample: RSS (what `ps` shows, counting a page shared by forked children once per
process, so it overstates a tree of forks) and PSS (each shared page split between its
sharers, so the tree's sum is what it really holds). A spike shorter than SAMPLE_S can slip
between samples; a reply read without a cap grows for seconds (10 GB in under 10 s was seen).
"""

import contextlib
import threading
from pathlib import Path

import psutil

SAMPLE_S = 0.05
MIB = 1024 * 1024


def pss_of(pid: int) -> int:
    """Proportional set size in bytes (smaps_rollup), 0 for a process gone meanwhile."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class TreeMemory:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss = self.peak_pss = 0
        self.peak_processes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def __enter__(self) -> "TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _tree(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        return []

    def _sample_until_stopped(self) -> None:
        while not self._stop.is_set():
            rss = pss = 0
            tree = self._tree()
            for proc in tree:
                with contextlib.suppress(psutil.Error):
                    rss += proc.memory_info().rss
                    pss += pss_of(proc.pid)
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.peak_processes = max(self.peak_processes, len(tree))
            self.samples += 1
            self._stop.wait(SAMPLE_S)

    def describe(self) -> str:
        return (
            f"peak PSS {self.peak_pss / MIB:.0f} MiB, peak RSS {self.peak_rss / MIB:.0f} MiB, "
            f"up to {self.peak_processes} processes, {self.samples} samples"
        )
