"""What the stream manager says the run observed: silent streams, all failed, hosts over the cap."""

from typing import Any

from common.messages import Kind
from supervisor.children import ChildSpec, ChildState
from supervisor.streams import StreamManager, stream_name
from tests.run.test_stream_manager import FakeClock, FakeSupervisor, _host, stream_stats


class _Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    warning = info


def _manager(max_streams: int = 256) -> tuple[StreamManager, FakeSupervisor]:
    sup = FakeSupervisor(log=_Log())  # type: ignore[arg-type]
    spec_for = lambda host: ChildSpec(name=stream_name(host), role="stream", entrypoint="x:y")  # noqa: E731
    return StreamManager(sup, spec_for, 30.0, FakeClock(), max_streams=max_streams), sup  # type: ignore[arg-type]


def test_a_stream_up_all_window_without_a_line_is_silent_and_a_gone_host_is_not() -> None:
    manager, sup = _manager()
    manager.update([_host("a"), _host("b"), _host("c")])
    manager.update([_host("a"), _host("b")])  # c left: it was not up for the whole window
    sup.children["stream:b"].last[Kind.STATS] = stream_stats(lines=0, next_seq=4)  # lines from an earlier life
    manager.close_window()
    assert manager.silent() == ["stream:a"]


def test_streams_failed_only_when_every_stream_failed() -> None:
    manager, sup = _manager()
    manager.update([_host("a"), _host("b")])
    sup.children["stream:a"].state = ChildState.FAILED
    assert not manager.all_failed()
    sup.children["stream:b"].state = ChildState.FAILED
    assert manager.all_failed()


def test_hosts_beyond_the_cap_get_no_stream_and_the_count_is_logged_when_it_changes() -> None:
    manager, sup = _manager(max_streams=2)
    manager.update([_host("ctl"), _host("a"), _host("b"), _host("c")])
    manager.update([_host("ctl"), _host("a"), _host("b"), _host("c")])
    assert sorted(sup.children) == ["stream:a", "stream:ctl"]
    over = [f for e, f in sup.log.events if e == "hosts_over_limit"]  # type: ignore[attr-defined]
    assert over == [{"hosts": 2, "listed": 4, "max_streams": 2}]
    assert manager.most_over_limit == 2


def test_a_stream_cut_off_at_the_end_is_lost_but_not_a_silent_one_a_gone_host_or_a_single_failure() -> None:
    manager, sup = _manager()
    manager.update([_host(n) for n in ("cut", "once", "silent", "gone")])
    manager.update([_host(n) for n in ("cut", "once", "silent")])  # gone left the listing
    cut_off = {"lines": 5, "failed_connects": 2, "last_error": "FetchLogs: unavailable ... refused"}
    sup.children["stream:cut"].last[Kind.STATS] = stream_stats(**cut_off)
    sup.children["stream:once"].last[Kind.STATS] = stream_stats(
        **cut_off | {"failed_connects": 1}
    )  # a restart the stop cut short
    sup.children["stream:silent"].last[Kind.STATS] = stream_stats(**cut_off | {"lines": 0})  # that is stream_no_data's
    sup.children["stream:gone"].last[Kind.STATS] = stream_stats(**cut_off)
    assert manager.lost() == {"stream:cut": "FetchLogs: unavailable ... refused"}
