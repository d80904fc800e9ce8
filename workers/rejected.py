"""Hosts a listing refused, counted: one `hosts_rejected` event per change, never one per name.

A listing of 100,000 hostile worker names once logged a warning per name (154,859 in 8 s, 33 MB,
past journald's burst limit). Every refusal of one listing (a hostile name, a duplicate worker
id) goes into one `Rejections`; `RejectionLog` logs it as one `hosts_rejected` event, with a
count, a few names escaped and cut (`sample`) and the count per reason, and again only when the
refused set changes: a 10 s discovery loop on a standing cluster does not say the same thing
every 10 s. Duplicate worker ids are also named on their own (`duplicate_hosts`), the same way.
"""

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from common.messages import Kind, Message
from workers.hosts import HostileNameError, Refusal

SAMPLE_NAMES = 5
SAMPLE_CHARS = 64
DUPLICATE_IDS_SHOWN = 20


def shown(value: object) -> str:
    """A refused value as a log may carry it: repr escapes controls, bidi and zero-width characters."""
    text = repr(value)
    return text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"


def _fingerprint(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(errors="backslashreplace"), digest_size=8).digest())


@dataclass(frozen=True)
class HostsRejected(Message, kind=Kind.PROGRESS, tag="hosts_rejected"):
    """A listing's refused hosts: how many, the first few escaped and cut, the count per reason
    (invalid_name, duplicate, ...) and per field."""

    count: int
    sample: tuple[str, ...]
    reasons: dict[str, int]
    fields: dict[str, int]


@dataclass
class Rejections:
    """What one listing refused. The set is remembered as a fingerprint (a sum, so independent of
    order), never as 100,000 names."""

    count: int = 0
    sample: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    fields: Counter[str] = field(default_factory=Counter)
    duplicates: list[str] = field(default_factory=list)  # duplicate worker ids, each once
    fingerprint: int = 0

    def refuse(self, exc: HostileNameError) -> None:
        self.count += 1
        self.reasons[str(exc.reason)] += 1  # a plain str: orjson takes no enum as a key
        self.fields[exc.field] += 1
        if len(self.sample) < SAMPLE_NAMES:
            self.sample.append(shown(exc.value))
        self.fingerprint = (self.fingerprint + _fingerprint(f"{exc.field}\0{exc.reason}\0{exc.value!r}")) % 2**64

    def duplicate(self, field_name: str, value: str) -> None:
        """A second (third, ...) host with this id: counted as refused, the id named once."""
        if not self.duplicates or self.duplicates[-1] != value:
            self.duplicates.append(value)
        self.refuse(HostileNameError(field_name, value, Refusal.DUPLICATE))

    def report(self) -> HostsRejected:
        """The `hosts_rejected` message (its fields are the event's), and what results.json keeps."""
        return HostsRejected(self.count, tuple(self.sample), dict(sorted(self.reasons.items())),
                             dict(sorted(self.fields.items())))  # fmt: skip


@dataclass
class RejectionLog:
    """Says a listing's refusals when they differ from the previous listing's."""

    log: Any
    last: tuple[int, int] = (0, 0)
    last_duplicates: tuple[int, int] = (0, 0)

    def listed(self, rejections: Rejections) -> bool:
        """Log what changed since the previous listing; True when `hosts_rejected` was logged."""
        duplicates = (len(rejections.duplicates), _fingerprint("\0".join(rejections.duplicates)))
        if duplicates != self.last_duplicates and rejections.duplicates:
            ids = [shown(d) for d in rejections.duplicates[:DUPLICATE_IDS_SHOWN]]
            self.log.warning("duplicate_hosts", ids=ids, count=len(rejections.duplicates))
        self.last_duplicates = duplicates
        now = (rejections.count, rejections.fingerprint)
        if now == self.last:
            return False
        self.last = now
        level = self.log.warning if rejections.count else self.log.info
        level("hosts_rejected", **rejections.report().body)
        return True
