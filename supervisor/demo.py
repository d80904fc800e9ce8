"""The demo run (`run --demo-streams N`, hidden from --help): the supervisor over nothing but
N demo stream children, real subprocess trees with no cluster. Tests and benches use it to
exercise the skeleton (deadline, signals, stop, audit) without a controller."""

import argparse
from dataclasses import dataclass
from typing import Any

from common.errors import UsageError
from common.outcome import FailureReason
from supervisor.arbiter import Supervisor
from supervisor.children import ChildSpec
from supervisor.phases import phase
from supervisor.restart import RestartPolicy
from workers.child_args import DemoStreamArgs


@dataclass
class DemoWork:
    """Runs the given children until all have finished; judges nothing beyond the supervisor."""

    sup: Supervisor
    specs: list[ChildSpec]

    def run(self, log: Any) -> None:
        with phase(log, "children"):
            for spec in self.specs:
                self.sup.add(spec)
            self.sup.run_until(lambda: all(r.finished for r in self.sup.children.values()))

    def stop(self) -> None:
        pass

    def verdict(self) -> tuple[list[FailureReason], None]:
        return [], None


def demo_specs(args: argparse.Namespace) -> list[ChildSpec]:
    if args.demo_streams < 0:
        raise UsageError(f"--demo-streams: must be >= 0, got {args.demo_streams}")
    return [
        ChildSpec(
            name=f"stream:demo-{i}",
            role="stream",
            entrypoint="workers.demo_stream:main",
            args=DemoStreamArgs(duration_s=args.demo_duration, interval_s=args.demo_interval),
            restart=RestartPolicy(),
            preload=True,
        )
        for i in range(args.demo_streams)
    ]
