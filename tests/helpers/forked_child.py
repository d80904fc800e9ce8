"""Run a child entrypoint through the real runtime (`workers.runtime.child_main`) in a
fresh interpreter, and talk to it over the real message pipe.

Why a fresh interpreter rather than `os.fork()` of pytest: the child's memory is then its
own (a forked pytest would carry pytest's heap in its RSS, and its garbage collector
would copy it page by page), so memory bounds can be asserted as absolute numbers. What
runs in the child is the same code path the supervisor uses after its fork: setsid,
parent-death signal, fd cleanup, logging, stop signals, entrypoint, os._exit.
"""

import base64
import os
import pickle
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from common.messages import Kind, Message, MessageReader
from tests import messages as _test_messages  # noqa: F401  (registers the probes' messages)
from workers import messages as _messages  # noqa: F401  (and every product message)
from workers.runtime import Launch, child_main

REPO_ROOT = Path(__file__).resolve().parents[2]
EXIT_WAIT_S = 10.0


class ChildProcess:
    def __init__(
        self,
        run_dir: Path,
        args: object,
        *,
        name: str = "stream:test",
        entrypoint: str = "workers.stream:main",
        grace_s: float = 1.0,
        timeout_s: float = 90.0,
    ) -> None:
        self.run_dir = run_dir
        self.spec = {
            "name": name,
            "role": "stream",
            "entrypoint": entrypoint,
            "args": args,
            "run_id": "test-run",
            "run_dir": str(run_dir),
            "grace_s": grace_s,
            "timeout_s": timeout_s,
        }
        self.messages: list[Message] = []
        self._reader = MessageReader()
        self.proc: subprocess.Popen[bytes] | None = None
        self._read_fd = -1

    def start(self) -> "ChildProcess":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        stdout = open(self.run_dir / "child-stdout.log", "ab")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.helpers.forked_child", _encode(self.spec), str(write_fd)],
                pass_fds=[write_fd],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )
        finally:
            os.close(write_fd)
            stdout.close()
        self._read_fd = read_fd
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def poll_messages(self, timeout_s: float) -> list[Message]:
        ready, _, _ = select.select([self._read_fd], [], [], timeout_s)
        if ready:
            data = os.read(self._read_fd, 65536)
            if data:
                self.messages.extend(self._reader.feed(data))
        return self.messages

    def wait_message(self, kind: Kind, timeout_s: float) -> Message:
        end = time.monotonic() + timeout_s
        while True:
            found = [m for m in self.messages if m.kind == kind]
            if found:
                return found[-1]
            left = end - time.monotonic()
            if left <= 0 or (self.proc is not None and self.proc.poll() is not None and not self._readable()):
                raise AssertionError(f"no {kind} message within {timeout_s} s; child output:\n{self.output()}")
            self.poll_messages(min(left, 0.1))

    def _readable(self) -> bool:
        return bool(select.select([self._read_fd], [], [], 0)[0])

    def stop(self, timeout_s: float = EXIT_WAIT_S) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout_s)
        self._drain()
        return code

    def kill(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(timeout=EXIT_WAIT_S)

    def wait(self, timeout_s: float = EXIT_WAIT_S) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout_s)
        self._drain()
        return code

    def _drain(self) -> None:
        while self._readable():
            data = os.read(self._read_fd, 65536)
            if not data:
                break
            self.messages.extend(self._reader.feed(data))

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
        if self._read_fd >= 0:
            os.close(self._read_fd)
            self._read_fd = -1

    def output(self) -> str:
        path = self.run_dir / "child-stdout.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        path = self.run_dir / "events.jsonl"
        if not path.exists():
            return []
        found = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
        return [e for e in found if name is None or e.get("event") == name]

    def __enter__(self) -> "ChildProcess":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _encode(spec: dict[str, Any]) -> str:
    """The launch for the fresh interpreter: the args object itself, as the supervisor's fork passes it."""
    return base64.b64encode(pickle.dumps(spec)).decode()


def _main() -> None:
    spec = pickle.loads(base64.b64decode(sys.argv[1]))
    launch = Launch(
        name=spec["name"],
        role=spec["role"],
        entrypoint=spec["entrypoint"],
        args=spec["args"],
        run_id=spec["run_id"],
        run_instance=spec["run_id"],
        run_dir=Path(spec["run_dir"]),
        deadline_at=time.monotonic() + spec["timeout_s"],
        parent_pid=os.getppid(),
        grace_s=spec["grace_s"],
    )
    child_main(launch, int(sys.argv[2]))


if __name__ == "__main__":
    _main()
