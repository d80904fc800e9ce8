"""What a stream costs in memory (workers/stream/memory.py) agrees with the units and with a measurement.

The units' `MemoryMax` must hold a run of `max_streams` (its default) streams of every transport
the units run, beside the rest of the run; and bench/stream_memory.py, run here as a smoke with a
few workers (not timed), must measure each transport within its declared figure, so neither the
bench nor the figures can rot. Few streams split the supervisor's shared pages among fewer
processes than 128 do, so the smoke measures a little more per stream than the full bench: the
declared figures cover both.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

from supervisor.config import StreamSettings
from tests.helpers.supervisor_proc import REPO_ROOT
from workers.stream.memory import RUN_BASE_PSS_MIB, STREAM_PSS_MIB
from workers.transports import TransportKind

UNITS = sorted((REPO_ROOT / "systemd").glob("*.service"))
SMOKE_WORKERS = 16  # fewer would split the shared pages among too few to compare with 128
SMOKE_TIMEOUT_S = 240
UNITS_BYTES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
# The embedded cluster runs on the machine that runs the canary only in development, never
# under a unit; its few VMs bound its streams, not max_streams.
NOT_UNDER_UNITS = frozenset({TransportKind.LOCAL})


def memory_max_mib(unit: Path) -> float:
    [value] = re.findall(r"^MemoryMax=(\S+)$", unit.read_text(), re.MULTILINE)
    number, suffix = re.fullmatch(r"(\d+)([KMGT]?)", value).groups()  # type: ignore[union-attr]
    return int(number) * UNITS_BYTES.get(suffix, 1) / (1 << 20)


def test_every_transport_has_a_declared_cost() -> None:
    assert set(STREAM_PSS_MIB) == set(TransportKind)


def test_the_units_memory_max_holds_max_streams_streams_of_every_transport() -> None:
    streams = StreamSettings().max_streams
    assert UNITS, "no unit found"
    for unit in UNITS:
        limit = memory_max_mib(unit)
        for kind, cost in STREAM_PSS_MIB.items():
            if kind in NOT_UNDER_UNITS:
                continue
            needed = RUN_BASE_PSS_MIB + streams * cost
            assert needed <= limit, f"{unit.name}: MemoryMax {limit:.0f} MiB < {streams} x {cost} MiB ({kind}) + base"


def test_the_bench_measures_each_transport_within_its_declared_cost(tmp_path: Path) -> None:
    argv = [sys.executable, "bench/stream_memory.py", "--workers", str(SMOKE_WORKERS), "--json"]
    out = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S)
    assert out.returncode == 0, out.stderr[-3000:]
    measured: dict[str, list[float]] = json.loads(out.stdout.splitlines()[-1])
    assert len(measured[TransportKind.IRIS_LOG]) == SMOKE_WORKERS + 1, measured
    assert len(measured[TransportKind.SSH]) == SMOKE_WORKERS, measured
    for kind, values in measured.items():
        assert values and max(values) <= STREAM_PSS_MIB[TransportKind(kind)], (kind, values)
