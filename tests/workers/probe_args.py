"""The arguments of the probes in `probes.py`; free of grpc, so the test process may import it."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.controller_target import ControllerTarget
from workers.child_args import UNAVAILABLE_REPORT_S, CustomTest
from workers.controller.model import JobRequest


@dataclass(frozen=True)
class ProbeArgs:
    """The probes that ask the controller: what `polling.connect` needs, and what to ask."""

    target: ControllerTarget
    jobs: tuple[CustomTest, ...] = ()
    count: int = 0
    unavailable_report_s: float = UNAVAILABLE_REPORT_S


def as_custom_test(job: Mapping[str, Any]) -> CustomTest:
    """A test's job written as a dict (name, argv, device, ...), as the config reader would build it."""
    fields = {k: v for k, v in job.items() if k != "expect"}
    return CustomTest(JobRequest(**{**fields, "argv": tuple(job["argv"])}), job.get("expect", "succeeded"))
