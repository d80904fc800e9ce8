"""Which VM hosts have a stream child: the parent's half of discovery.

The discovery child sends the full set of hosts it sees; this module turns each set into
stream children. A new host gets a stream at once (within the loop's next wake). A host
missing from a listing is not stopped at once: discovery can flap while a VM reboots or
the controller restarts, and a stream that is stopped and started again costs a
reconnect. Only a host gone for longer than `gone_grace_s` has its stream stopped; its
file stays. A host that comes back after that gets its stream again, appending to the
same file.

At most `max_streams` streams are live (not retired) at once: a host beyond the cap gets
no stream, and how many hosts are left without one is logged (`hosts_over_limit`)
whenever that number changes; the most seen is kept for the verdict. Hosts are taken in
listing order, so the controller (listed first) always has its stream.

A host whose spec is refused (a name that may not reach a command line) or whose stream name
an earlier host of the same listing took gets no stream; they are counted per listing
(`workers.rejected`: one `hosts_rejected` event when that changes) and the most refused in
one listing kept for the verdict.

The observation window, for "seeing nothing is a failure": it ends when the tests phase
(an observe run's `observe` phase) ends (`close_window`). A stream counts as up for the
whole window when its child was not finished then (running, starting or in backoff) and
its host never left a listing (`host_gone`) while it had a stream. Such a stream that
delivered no line by its final stats is silent (`silent`). A stream of a host never gone
that delivered, then ended with its followers failing to reach its source (a log server
gone, a host unreachable but listed) is lost (`lost`), window or not.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from common.deadline import Clock
from supervisor.arbiter import Supervisor
from supervisor.children import ChildRecord, ChildSpec, ChildState
from workers.hosts import HostileNameError, Role
from workers.messages import DemoStats, HostEntry, StreamProgress, StreamStats
from workers.rejected import RejectionLog, Rejections

Host = HostEntry
# A stream whose followers failed this many times in a row up to the stop lost the lines since
# its last one: one failure could be a restart that the end of the run cut short.
LOST_AFTER_FAILED_CONNECTS = 2


def stream_name(host: Host) -> str:
    """`stream:<vm>` for a one-host VM, `stream:<vm>:<host>` for a host of a multi-host VM,
    `stream:controller@<vm>` for the controller.

    A VM name never holds "@" (workers.hosts.NAME_PATTERN), so a worker whose VM is named
    like the controller's gets a stream of its own instead of shadowing the controller's.
    """
    if host.role is Role.CONTROLLER:
        return f"stream:controller@{host.vm}"
    if host.hosts_in_vm > 1:
        return f"stream:{host.vm}:{host.host}"
    return f"stream:{host.vm}"


@dataclass
class StreamManager:
    supervisor: Supervisor
    spec_for: Callable[[Host], ChildSpec]
    gone_grace_s: float
    clock: Clock
    max_streams: int = 256
    gone_since: dict[str, float | None] = field(default_factory=dict)
    hosts: dict[str, Host] = field(default_factory=dict)
    retired: set[str] = field(default_factory=set)
    ever_gone: set[str] = field(default_factory=set)
    over_limit: int = 0  # hosts without a stream in the latest listing
    most_over_limit: int = 0
    window: frozenset[str] | None = None
    most_rejected: Rejections = field(default_factory=Rejections)

    def __post_init__(self) -> None:
        self.said = RejectionLog(self.supervisor.log)

    def update(self, hosts: list[Host]) -> None:
        now = self.clock()
        rejections = Rejections()
        present: dict[str, Host] = {}
        for host in hosts:
            name = stream_name(host)
            if name in present:
                rejections.duplicate("stream", name)
            else:
                present[name] = host
        left_out = 0
        for name, host in present.items():
            record = self.supervisor.children.get(name)
            if (record is None or name in self.retired) and self._live() >= self.max_streams:
                left_out += 1
                continue
            try:
                spec = self.spec_for(host) if record is None else record.spec
            except HostileNameError as exc:
                rejections.refuse(exc)
                continue
            self.gone_since[name] = None
            self.hosts[name] = host
            if record is None:
                self.supervisor.add(spec)
            elif name in self.retired and record.finished:
                self.retired.discard(name)
                self.supervisor.log.info("host_returned", child=name)
                self.supervisor.respawn(record)
        for name, since in self.gone_since.items():
            if name not in present and since is None:
                self.gone_since[name] = now
                self.ever_gone.add(name)
                self.supervisor.log.info("host_gone", child=name, grace_s=self.gone_grace_s)
        self._count_left_out(left_out, len(present))
        self.said.listed(rejections)
        if rejections.count > self.most_rejected.count:
            self.most_rejected = rejections

    def _live(self) -> int:
        return sum(name not in self.retired for name in self.gone_since)

    def _count_left_out(self, left_out: int, listed: int) -> None:
        if left_out != self.over_limit:
            self.supervisor.log.warning("hosts_over_limit", hosts=left_out, listed=listed, max_streams=self.max_streams)
        self.over_limit = left_out
        self.most_over_limit = max(self.most_over_limit, left_out)

    def close_window(self) -> None:
        """The tests (or observe) phase ended: remember which streams were up for the whole window."""
        self.window = frozenset(r.name for r in self.records() if not r.finished and r.name not in self.ever_gone)

    def silent(self) -> list[str]:
        """Streams up for the whole window that delivered no line (empty before `close_window`)."""
        by_name = self.supervisor.children
        return sorted(name for name in self.window or () if not _delivered(by_name[name]))

    def lost(self) -> dict[str, str]:
        """Streams of hosts still listed that delivered, then ended cut off from their source
        (`LOST_AFTER_FAILED_CONNECTS` followers in a row failed up to the stop): name -> last error.
        Unlike `silent`, not only for a whole window: a run stopped early lost those lines too."""
        lost = {}
        for record in sorted(self.records(), key=lambda r: r.name):
            stats = stream_stats(record)
            failed = stats is not None and stats.failed_connects >= LOST_AFTER_FAILED_CONNECTS
            if record.name not in self.ever_gone and _delivered(record) and stats is not None and failed:
                lost[record.name] = stats.last_error
        return lost

    def all_failed(self) -> bool:
        records = self.records()
        return bool(records) and all(r.state is ChildState.FAILED for r in records)

    def expire(self) -> None:
        """Stop the streams of hosts gone for longer than the grace."""
        now = self.clock()
        expired: list[ChildRecord] = []
        for name, since in self.gone_since.items():
            record = self.supervisor.children.get(name)
            if since is not None and now - since >= self.gone_grace_s and record is not None and not record.finished:
                expired.append(record)
        if expired:
            for record in expired:
                self.retired.add(record.name)
                self.supervisor.log.info("stream_retired", child=record.name)
            self.supervisor.stop_children(expired)

    def tick(self) -> float | None:
        """Retire what is due; return the seconds until the next host is due, if any."""
        self.expire()
        now = self.clock()
        pending = [
            since + self.gone_grace_s - now
            for name, since in self.gone_since.items()
            if since is not None and name not in self.retired
        ]
        return max(0.0, min(pending)) if pending else None

    def records(self) -> list[ChildRecord]:
        return [r for name, r in self.supervisor.children.items() if name in self.gone_since]


def stream_stats(record: ChildRecord) -> StreamStats | None:
    return record.last_of(StreamStats)


def stream_lines(record: ChildRecord) -> int:
    """The lines a stream (or the demo's) said it delivered: its end stats, else its last progress."""
    numbers = record.numbers()
    return numbers.lines if isinstance(numbers, StreamStats | StreamProgress | DemoStats) else 0


def _delivered(record: ChildRecord) -> bool:
    """Whether a stream wrote any line: its file's next `seq` (across restarts), else its counters."""
    stats, progress = stream_stats(record), record.last_of(StreamProgress)
    said = stats is not None and (stats.next_seq > 0 or stats.lines > 0)
    return said or (progress is not None and progress.lines > 0)
