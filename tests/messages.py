"""Messages only test children send (probes' answers): registered wherever the tests read them."""

from dataclasses import dataclass

from common.jsonshape import Json
from common.messages import Kind, Message


@dataclass(frozen=True)
class ProbeResult(Message, kind=Kind.RESULT, tag="probe_result"):
    """A probe child's answer, as plain JSON: the test reads what it asked for."""

    answer: dict[str, Json]


@dataclass(frozen=True)
class ProbeStats(Message, kind=Kind.STATS, tag="probe_stats"):
    lines: int = 0
    after: bool = False
