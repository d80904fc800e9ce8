"""Run a child entrypoint the way the supervisor does, and talk to it like the supervisor.

    with forked_child("workers.discovery:main", {"controller": addr, ...}, run_dir) as child:
        child.wait_message(Kind.READY, timeout_s=10)
        ...
        child.stop()                  # SIGTERM, as the supervisor's escalation starts
        assert child.reap(2.0) == 0   # bounded wait for its exit status

The child is forked from the test process and runs `workers.runtime.child_main` with a
`Launch`, through `supervisor.spawn.fork_child` itself: its own session, its message
pipe on fd 3, a parent-death signal, the run's deadline. Its messages are read with the
supervisor's `MessageReader`. Readiness is its READY message; if it exits first, the wait
fails with its exit code and the tail of its events. On the way out, even when the test
failed, a child still running gets SIGTERM, a bounded wait, then SIGKILL to its process
group, and is reaped: the only waits on its pid are here (`os.waitpid` with WNOHANG,
polled against a monotonic deadline).
"""

import contextlib
import os
import select
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from common.messages import Kind, Message, MessageReader
from common.processes import signal_group
from supervisor.spawn import fork_child
from tests.messages import ProbeResult
from workers import messages as _messages  # noqa: F401  (every product message, for the reader)
from workers.runtime import Launch

DEFAULT_TIMEOUT_S = 60.0
CHILD_GRACE_S = 1.0
REAP_POLL_S = 0.01


def _body(message: Message) -> dict[str, Any]:
    return message.answer if isinstance(message, ProbeResult) else message.body


class ChildExited(AssertionError):
    pass


@dataclass
class ForkedChild:
    name: str
    pid: int
    fd: int | None
    run_dir: Path
    reader: MessageReader = field(default_factory=MessageReader)
    messages: list[Message] = field(default_factory=list)
    exit_code: int | None = None
    stop_sent_at: float | None = None
    exited_at: float | None = None

    # -- messages -----------------------------------------------------------------------

    def pump(self, timeout_s: float = 0.0) -> bool:
        """Read whatever the child sent within `timeout_s`; False once its pipe is closed."""
        if self.fd is None:
            return False
        readable, _, _ = select.select([self.fd], [], [], max(0.0, timeout_s))
        if not readable:
            return True
        try:
            data = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return True
        if not data:
            os.close(self.fd)
            self.fd = None
            return False
        self.messages.extend(self.reader.feed(data))
        return True

    def of(self, kind: Kind) -> list[dict[str, Any]]:
        """The bodies of `kind` as JSON (a probe's: its answer)."""
        return [_body(m) for m in self.messages if m.kind is kind]

    def wait_message(
        self, kind: Kind, timeout_s: float, match: Callable[[dict[str, Any]], bool] = lambda _b: True
    ) -> dict[str, Any]:
        """The first message of `kind` that `match`es (seen before or arriving within `timeout_s`)."""
        end = time.monotonic() + timeout_s
        seen = 0
        while True:
            for message in self.messages[seen:]:
                if message.kind is kind and match(_body(message)):
                    return _body(message)
            seen = len(self.messages)
            if self.fd is None:
                self.reap(CHILD_GRACE_S + 1)
                raise ChildExited(
                    f"{self.name} exited ({self.exit_code}) before sending a matching {kind}; "
                    f"events:\n{self.events_tail()}"
                )
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching {kind} from {self.name} within {timeout_s} s")
            self.pump(min(remaining, 0.1))

    # -- events (what the child logged) -------------------------------------------------

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        path = self.run_dir / "events.jsonl"
        if not path.exists():
            return []
        records = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
        return [r for r in records if r.get("child") == self.name and (event is None or r["event"] == event)]

    def events_tail(self, n: int = 20) -> str:
        return "\n".join(orjson.dumps(e).decode() for e in self.events()[-n:])

    # -- ending -------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM: the child's stop request (its hard-exit timer starts now)."""
        if self.exit_code is None:
            self.stop_sent_at = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)

    def reap(self, timeout_s: float) -> int | None:
        """Wait up to `timeout_s` for the child to exit, reading its pipe meanwhile; its exit code or None."""
        end = time.monotonic() + timeout_s
        while self.exit_code is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.exit_code = os.waitstatus_to_exitcode(status)
                self.exited_at = time.monotonic()
                break
            if time.monotonic() >= end:
                return None
            # The pipe's EOF often arrives first; either way this wait is bounded.
            if not self.pump(REAP_POLL_S):
                select.select([], [], [], REAP_POLL_S)
        self._drain()
        return self.exit_code

    def _drain(self) -> None:
        """Read its last messages (STATS, RESULT) left in the pipe, up to EOF."""
        while self.fd is not None and select.select([self.fd], [], [], 0)[0]:
            self.pump(0.0)

    def stop_and_reap(self, timeout_s: float = CHILD_GRACE_S + 1) -> int:
        self.stop()
        code = self.reap(timeout_s)
        if code is None:
            self.kill()
            raise AssertionError(f"{self.name} did not exit within {timeout_s} s of SIGTERM")
        return code

    @property
    def stop_to_exit_s(self) -> float | None:
        if self.stop_sent_at is None or self.exited_at is None:
            return None
        return self.exited_at - self.stop_sent_at

    def kill(self) -> None:
        """SIGKILL the child's whole process group (it leads its own session) and reap it."""
        if self.exit_code is None:
            signal_group(self.pid, signal.SIGKILL)
            self.reap(5.0)

    def close(self) -> None:
        if self.exit_code is None:
            self.stop()
            if self.reap(CHILD_GRACE_S + 1) is None:
                self.kill()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def fork(
    entrypoint: str,
    args: Mapping[str, Any],
    run_dir: Path,
    *,
    name: str = "",
    role: str = "test",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    grace_s: float = CHILD_GRACE_S,
) -> ForkedChild:
    """Fork a child running `entrypoint` with the supervisor's own `fork_child`."""
    name = name or entrypoint.rpartition(".")[2].replace(":", "-")
    launch = Launch(
        name=name,
        role=role,
        entrypoint=entrypoint,
        args=args,
        run_id=f"test-{uuid.uuid4().hex[:12]}",
        run_instance="test",
        run_dir=run_dir,
        deadline_at=time.monotonic() + timeout_s,
        parent_pid=os.getpid(),
        grace_s=grace_s,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    pid, read_fd = fork_child(launch)
    return ForkedChild(name=name, pid=pid, fd=read_fd, run_dir=run_dir)


@contextlib.contextmanager
def forked_child(entrypoint: str, args: Mapping[str, Any], run_dir: Path, **options: Any) -> Iterator[ForkedChild]:
    """A forked child that is stopped (TERM, bounded wait, KILL) and reaped however the block ends."""
    child = fork(entrypoint, args, run_dir, **options)
    try:
        yield child
    finally:
        child.close()


def run_to_end(
    entrypoint: str, args: Mapping[str, Any], run_dir: Path, timeout_s: float, **options: Any
) -> ForkedChild:
    """Run a one-shot child until it exits by itself (bounded) and return it with its messages."""
    with forked_child(entrypoint, args, run_dir, timeout_s=timeout_s + 5, **options) as child:
        if child.reap(timeout_s) is None:
            raise AssertionError(f"{child.name} did not finish within {timeout_s} s; events:\n{child.events_tail()}")
    return child
