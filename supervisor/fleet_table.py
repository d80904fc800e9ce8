"""The fleet table: one row per worker, joining what the run knows of it.

Discovery's listings say which workers exist (id, health, slice, host index, group: HOSTS
messages, the latest entry of each host kept); the streams say whether each worker's logs were
seen alive; the fleet checks (`workers/fleet`) say what they found wrong with each worker, and
which hosts of a slice no worker is listed for. A finding about a worker discovery did not list
(a missing slice host, a worker listed after discovery's last listing) gets a row of its own, so
every worker a check named is in the table.

Alive means a line was seen: a stream that delivered none is not alive, whether the verdict
judged it (`stream_no_data`: up the whole window) or not (started late, stopped early).
"""

from collections.abc import Iterable, Mapping, Sequence

from supervisor.run_result import FleetFinding, FleetWorker, LogsAlive, StreamEntry
from supervisor.streams import stream_name
from workers.hosts import Role
from workers.messages import HostEntry, TestResult, WorkerFinding

# A row's key: the worker id, else (for a missing slice host, or a host listed by VM only) where it is.
Key = tuple[str, str, int | None]


def logs_alive(stream: StreamEntry | None) -> LogsAlive:
    if stream is None:
        return LogsAlive.NO_STREAM
    if stream.no_data:
        return LogsAlive.STREAM_NO_DATA
    delivered = (stream.lines or 0) > 0 or (stream.next_seq or 0) > 0  # next_seq: lines across restarts
    return LogsAlive.YES if delivered else LogsAlive.NO_LINES


def _key(worker_id: str, slice_name: str, slice_host: int | None, vm: str = "") -> Key:
    return (worker_id, "", None) if worker_id else (vm, slice_name, slice_host)


def _host_key(host: HostEntry) -> Key:
    slice_host = host.slice_host if host.slice else None
    return _key(host.worker_id, host.slice, slice_host, f"vm:{host.vm}:{host.host}")


def _finding_keys(finding: WorkerFinding) -> Key:
    return _key(finding.worker_id, finding.slice, finding.slice_host)


def _listed_row(host: HostEntry, stream: StreamEntry | None, findings: Sequence[FleetFinding]) -> FleetWorker:
    return FleetWorker(
        worker_id=host.worker_id, listed=True, healthy=host.healthy, vm=host.vm, slice=host.slice,
        slice_host=host.slice_host if host.slice else None, group=host.group,
        stream=stream.name if stream else None, stream_state=stream.state if stream else None,
        lines=stream.lines if stream else None, gaps=stream.gaps if stream else None,
        logs_alive=logs_alive(stream), findings=tuple(findings),
    )  # fmt: skip


def _unlisted_row(found: WorkerFinding, group: str, findings: Sequence[FleetFinding]) -> FleetWorker:
    return FleetWorker(
        worker_id=found.worker_id, listed=False, healthy=None, vm="", slice=found.slice, slice_host=found.slice_host,
        group=group, stream=None, stream_state=None, lines=None, gaps=None, logs_alive=LogsAlive.NO_STREAM,
        findings=tuple(findings),
    )  # fmt: skip


def fleet_rows(
    hosts: Iterable[HostEntry], streams: Sequence[StreamEntry], checks: Mapping[str, TestResult]
) -> tuple[FleetWorker, ...]:
    """The table: discovery's workers (`hosts`, the controller skipped) with their streams (by stream name)
    and the fleet checks' per-worker findings (`checks`: RESULTs by check name), sorted by group, slice, host."""
    by_stream = {s.name: s for s in streams}
    found: dict[Key, list[FleetFinding]] = {}
    first: dict[Key, WorkerFinding] = {}
    for check, result in checks.items():
        for finding in result.workers:
            key = _finding_keys(finding)
            found.setdefault(key, []).append(FleetFinding(check, finding.problem))
            first.setdefault(key, finding)
    rows, seen = [], set()
    for host in hosts:
        if host.role is not Role.WORKER:
            continue
        # Its own findings, and a missing-host finding for its place in its slice (listed since the check).
        keys = [_host_key(host), *([("", host.slice, host.slice_host)] if host.slice else [])]
        seen.update(keys)
        findings = [f for key in keys for f in found.get(key, [])]
        rows.append(_listed_row(host, by_stream.get(stream_name(host)), findings))
    groups = {row.slice: row.group for row in rows if row.slice}
    rows += [_unlisted_row(f, groups.get(f.slice, ""), found[key]) for key, f in first.items() if key not in seen]
    return tuple(sorted(rows, key=lambda r: (r.group, r.slice, -1 if r.slice_host is None else r.slice_host,
                                             r.worker_id, r.vm)))  # fmt: skip
