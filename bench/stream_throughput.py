"""Throughput of the stream child's read/parse/write loop against `cat`, on the same data.

    python bench/stream_throughput.py [--mb 200] [--runs 3] [--huge-line-mb 64] [--dir DIR]

Generates DIR/data.log once (~100-byte docker-style lines: `<RFC 3339 ns timestamp> text`),
then, alternating, `cat data.log | cat > out` and `cat data.log | <stream child loop>`,
where the loop is the real one (StreamChild: Connection, poll, framing, encoding,
O_APPEND writes) with `cat data.log` as the follower. Each run writes a fresh file
(overwriting a large file on a `discard` mount costs TRIM time that is not ours).
Prints MB/s of input for each, best of `--runs`, and their ratio, as a table and then
as one JSON document. There is no target: a VM's container log runs at kilobytes to a
few megabytes per second, far below either.

Then one line of `--huge-line-mb` MB with no newline until its end, written by `dd` in 4 KiB
pieces (docker writes a long line in 16 KiB pieces, ssh in packets), through the same loop:
the stream keeps its first `max_line_bytes` and drops the rest as it comes, at read speed
(before, the coalescing pause after each small read held it to a pipe's worth per 0.5 s).

The ratio is of sustained throughput: the stream child's time runs from starting the
follower to having written its last record. Its final fdatasync at stop (which `cat`
does not do, and which in a long run is amortised over fsync_interval_s) is timed
separately and shown as a second ratio.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import logs
from common.deadline import Deadline
from common.messages import Channel
from workers.groups import ProcessGroups
from workers.hosts import Role, VmHost
from workers.runtime import ChildContext, StopRequest
from workers.stream.backoff import Backoff
from workers.stream.child import StreamChild
from workers.stream.outfile import StreamFile
from workers.stream.spec import StreamSpec
from workers.transports import LocalTransport

WORDS = ["alpha", "beta", "gamma", "delta", "worker", "task", "scheduled", "heartbeat", "ok", "tpu", "'q'", '"dq"']


def generate(path: Path, megabytes: int) -> None:
    if path.exists() and path.stat().st_size >= megabytes * 1_000_000:
        return
    rnd = random.Random(1)
    base_ns = 1_700_000_000 * 10**9
    with open(path, "wb") as out:
        written, i = 0, 0
        while written < megabytes * 1_000_000:
            lines = []
            for _ in range(10_000):
                seconds, nanos = divmod(base_ns + i * 1000, 10**9)
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
                text = f"I{i:08d} " + " ".join(rnd.choice(WORDS) for _ in range(12))
                lines.append(f"{stamp}.{nanos:09d}Z {text[:68]:<68}\n")
                i += 1
            data = "".join(lines).encode()
            out.write(data)
            written += len(data)


def run_cat(data: Path, out: Path) -> float:
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    with open(out, "wb") as sink:
        source = subprocess.Popen(["cat", str(data)], stdout=subprocess.PIPE)
        assert source.stdout is not None
        copier = subprocess.Popen(["cat"], stdin=source.stdout, stdout=sink)
        source.stdout.close()
        copier.wait()
        source.wait()
    return time.perf_counter() - started


def generate_huge_line(path: Path, megabytes: int) -> None:
    if path.exists() and path.stat().st_size >= megabytes * 1_000_000:
        return
    with open(path, "wb") as out:
        out.write(b"2024-05-01T12:00:00.000000000Z ")
        for _ in range(megabytes):
            out.write(b"x" * 1_000_000)
        out.write(b"\n2024-05-01T12:00:01.000000000Z after\n")


def run_stream(data: Path, workdir: Path, follower: str = 'exec cat "$0"') -> tuple[float, float, StreamChild]:
    """Seconds to stream `data` into the file, seconds of the stop (fdatasync), the child."""
    run_dir = workdir / "run"
    out = run_dir / "logs" / "vms" / "vm-1.jsonl"
    out.unlink(missing_ok=True)
    # `sh -c 'exec cat "$0"' DATA logs --state-dir ...`: the local transport's argv with
    # cat as the follower (the arguments after DATA are ignored by the shell script).
    transport = LocalTransport(state_dir=str(workdir), command_prefix=("sh", "-c", follower, str(data)))
    spec = StreamSpec(VmHost("vm-1", 0, Role.WORKER, "vm-1"), "iris-worker", transport)
    devnull = os.open(os.devnull, os.O_WRONLY)
    ctx = ChildContext(
        name="stream:bench", role="stream", run_id="bench", run_dir=run_dir, deadline=Deadline.after(600),
        args=spec, channel=Channel(devnull), stop=StopRequest(), groups=ProcessGroups(), grace_s=1.0,
        log=logs.get_logger(),
    )  # fmt: skip
    child = StreamChild(ctx, spec, Backoff(), StreamFile(spec.output_path(run_dir), spec.max_line_bytes))
    started = time.perf_counter()
    conn = child._connect()
    assert conn is not None
    reason = child._pump(conn)
    child._disconnect(conn, reason)
    streamed = time.perf_counter()
    child._finish()
    stopped = time.perf_counter()
    os.close(devnull)
    return streamed - started, stopped - streamed, child


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--huge-line-mb", type=int, default=64)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "iris-smoke-bench"))
    opts = parser.parse_args()
    workdir = Path(opts.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    quiet = os.open(os.devnull, os.O_WRONLY)
    logs.configure("bench", "bench", workdir / "events.jsonl", stdout_format="json", stdout_fd=quiet)
    data = workdir / "data.log"
    generate(data, opts.mb)
    size = data.stat().st_size
    cat_times, stream_times, synced_times, lines = [], [], [], 0
    for _ in range(opts.runs):
        cat_times.append(run_cat(data, workdir / "out.cat"))
        streamed, stopped, child = run_stream(data, workdir)
        stream_times.append(streamed)
        synced_times.append(streamed + stopped)
        lines = child.encoder.counters.lines
    cat_mbs, stream_mbs = size / min(cat_times) / 1e6, size / min(stream_times) / 1e6
    synced_mbs = size / min(synced_times) / 1e6
    growth = (workdir / "run/logs/vms/vm-1.jsonl").stat().st_size / size
    huge = workdir / "huge-line.log"
    generate_huge_line(huge, opts.huge_line_mb)
    huge_s, _stop_s, child = run_stream(huge, workdir, 'exec dd if="$0" bs=4k status=none')
    assert (child.encoder.counters.lines, child.encoder.counters.truncated_lines) == (2, 1)
    huge_mbs = huge.stat().st_size / huge_s / 1e6
    result = {
        "input_mb": round(size / 1e6),
        "lines": lines,
        "runs": opts.runs,
        "cat_mb_s": round(cat_mbs, 1),
        "stream_child_mb_s": round(stream_mbs, 1),
        "stream_child_lines_s": round(lines / min(stream_times)),
        "ratio_to_cat": round(stream_mbs / cat_mbs, 3),
        "with_stop_mb_s": round(synced_mbs, 1),
        "bytes_out_per_byte_in": round(growth, 2),
        "huge_line_mb": round(huge.stat().st_size / 1e6),
        "huge_line_mb_s": round(huge_mbs, 1),
        "loadavg": os.getloadavg(),
    }
    print(f"input        {size / 1e6:.0f} MB, {lines} lines, best of {opts.runs}")
    print(f"cat          {cat_mbs:8.1f} MB/s")
    per_s = result["stream_child_lines_s"]
    print(f"stream child {stream_mbs:8.1f} MB/s   ({growth:.2f} bytes out per byte in, {per_s} lines/s)")
    print(f"ratio        {stream_mbs / cat_mbs:8.1%}")
    print(f"with stop    {synced_mbs:8.1f} MB/s   ({synced_mbs / cat_mbs:.1%} of cat, final fdatasync included)")
    print(f"huge line    {huge_mbs:8.1f} MB/s   (one {opts.huge_line_mb} MB line in 4 KiB writes, truncated)")
    print(json.dumps(result))
    (workdir / "out.cat").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
