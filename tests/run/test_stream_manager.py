"""The parent's half of discovery, driven by scripted host sets and a fake clock."""

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from supervisor.children import ChildRecord, ChildSpec, ChildState
from supervisor.streams import StreamManager, stream_name
from tests.helpers.clock import FakeClock
from workers.hosts import Role
from workers.messages import HostEntry, StreamStats


class _Log:
    def info(self, *_args: Any, **_kw: Any) -> None:
        pass


@dataclass
class FakeSupervisor:
    """Records what the manager asks of the supervisor; children 'run' until stopped."""

    children: dict[str, ChildRecord] = field(default_factory=dict)
    stopped: list[str] = field(default_factory=list)
    log: _Log = field(default_factory=_Log)

    def add(self, spec: ChildSpec) -> ChildRecord:
        record = ChildRecord(spec, state=ChildState.RUNNING, starts=1)
        self.children[spec.name] = record
        return record

    def respawn(self, record: ChildRecord) -> None:
        record.state, record.starts = ChildState.RUNNING, record.starts + 1

    def stop_children(self, records: list[ChildRecord]) -> None:
        for record in records:
            record.state = ChildState.EXITED
            self.stopped.append(record.name)


def _host(vm: str, host: int = 0, hosts_in_vm: int = 1) -> HostEntry:
    return HostEntry(vm, host, Role.WORKER, vm, "", "iris-worker", hosts_in_vm=hosts_in_vm)


def stream_stats(**numbers: Any) -> StreamStats:
    """A stream's end stats: `numbers`, the rest zero."""
    zero = {f.name: 0 for f in dataclasses.fields(StreamStats)} | {"last_error": "", "capped": False, "last_ts": None}
    return StreamStats(**(zero | numbers))


def _manager(grace: float = 30.0) -> tuple[StreamManager, FakeSupervisor, FakeClock]:
    sup, clock = FakeSupervisor(), FakeClock(100.0)
    spec_for = lambda host: ChildSpec(name=stream_name(host), role="stream", entrypoint="x:y")  # noqa: E731
    return StreamManager(sup, spec_for, grace, clock), sup, clock  # type: ignore[arg-type]


def test_every_new_host_gets_a_stream_once() -> None:
    manager, sup, _ = _manager()
    manager.update([_host("a"), _host("b")])
    manager.update([_host("a"), _host("b"), _host("c")])
    assert sorted(sup.children) == ["stream:a", "stream:b", "stream:c"]


def test_hosts_of_a_multi_host_vm_get_one_stream_each() -> None:
    manager, sup, _ = _manager()
    manager.update([_host("slice", i, hosts_in_vm=4) for i in range(4)])
    assert sorted(sup.children) == [f"stream:slice:{i}" for i in range(4)]


def test_a_host_gone_briefly_keeps_its_stream() -> None:
    manager, sup, clock = _manager(grace=30)
    manager.update([_host("a")])
    manager.update([])
    clock.now += 29
    assert manager.tick() == 1.0
    manager.update([_host("a")])
    clock.now += 60
    assert manager.tick() is None and sup.stopped == []


def test_a_host_gone_past_the_grace_is_stopped_and_restarted_when_back() -> None:
    manager, sup, clock = _manager(grace=30)
    manager.update([_host("a"), _host("b")])
    manager.update([_host("b")])
    clock.now += 30
    manager.tick()
    assert sup.stopped == ["stream:a"]
    manager.update([_host("a"), _host("b")])
    assert sup.children["stream:a"].state is ChildState.RUNNING and sup.children["stream:a"].starts == 2
