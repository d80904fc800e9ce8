"""The systemd notification protocol against real AF_UNIX datagram sockets."""

import itertools
import signal
import statistics
from pathlib import Path

import pytest

from supervisor.canary import sdnotify
from tests.canary.daemon import FAKE_RUN, notify_socket, started
from tests.helpers.waiting import wait_for

EXIT_WAIT_S = 20.0


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notifier_sends_each_message_as_one_datagram(tmp_path: Path, abstract: bool) -> None:
    with notify_socket(tmp_path, abstract=abstract) as listener:
        notifier = sdnotify.Notifier({"NOTIFY_SOCKET": listener.address})
        try:
            assert notifier.ready("preflight done")
            assert notifier.status("running r1\nsecond line")
            assert notifier.watchdog()
            assert notifier.extend_timeout(12.5)
            assert notifier.stopping("bye")
        finally:
            notifier.close()
        assert listener.wait("READY") == {"READY": "1", "STATUS": "preflight done"}
        assert listener.wait("STATUS", "running r1 second line")
        assert listener.wait("WATCHDOG") == {"WATCHDOG": "1"}
        assert listener.wait("EXTEND_TIMEOUT_USEC") == {"EXTEND_TIMEOUT_USEC": "12500000"}
        assert listener.wait("STOPPING") == {"STOPPING": "1", "STATUS": "bye"}


def test_notifier_without_socket_is_a_no_op() -> None:
    notifier = sdnotify.Notifier({})
    assert not notifier.enabled
    assert not notifier.ready("x")


def test_notifier_survives_a_vanished_socket(tmp_path: Path) -> None:
    notifier = sdnotify.Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert not notifier.watchdog()
    assert notifier.failed == 1
    notifier.close()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "400000"}, 0.2),
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "42"}, 0.2),
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "43"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout_for_the_right_pid(
    environ: dict[str, str], expected: float | None
) -> None:
    assert sdnotify.watchdog_interval_s(environ, 42) == expected


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_daemon_notifies_ready_status_watchdog_and_stopping(tmp_path: Path, abstract: bool) -> None:
    """WATCHDOG_USEC=400 ms: pings every ~200 ms, before, during and after a run; STOPPING on SIGTERM."""
    with notify_socket(tmp_path, abstract=abstract) as listener:
        env = {"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "400000"}
        args = ("--interval", "1h", "--run-command", f"{FAKE_RUN}")
        with started(tmp_path, *args, env=env) as canary:
            ready = listener.wait("READY")
            assert ready["STATUS"].startswith(("idle", "running"))
            canary.wait_event("run_completed")
            listener.wait("STATUS")
            pings_wanted = 8
            wait_for(lambda: len(listener.received("WATCHDOG")) >= pings_wanted, 5.0, "8 watchdog pings")
            canary.signal(signal.SIGTERM)
            assert canary.wait_exit(EXIT_WAIT_S) == 0
            assert listener.wait("STOPPING")["STOPPING"] == "1"
        times = [t for t, _ in listener.received("WATCHDOG")]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert 0.15 <= statistics.median(gaps) <= 0.26, gaps
        # Never close to the 400 ms timeout, and never a burst (the loop waits, it does not spin).
        assert max(gaps) < 0.35, gaps
        assert min(gaps) > 0.1, gaps
        assert listener.received("READY")[0][0] <= times[0]
        print(f"watchdog gaps: median {statistics.median(gaps):.3f} s, min {min(gaps):.3f}, max {max(gaps):.3f}")
