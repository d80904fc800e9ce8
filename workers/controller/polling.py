"""How a child that polls its controller waits, retries and reports, whatever the wire.

- Waits between polls are `select` on the stop fd (`wait_or_stop`): a stop request wakes
  them at once, and there is no sleep that a stop cannot interrupt.
- A failed poll is logged with its code and retried at the next interval; a controller
  that stays unavailable longer than a bound is reported once (`Outage`).
- A reply the child cannot understand (`iris_api_mismatch`) is reported as an error the
  first time, naming the method and the field: retrying will not change the API.
- A call the controller refuses for who we are (`unauthenticated`, `permission_denied`:
  a bad or missing token) is reported once too (`controller_unauthenticated`), naming the
  credential refused: `iris`, or `proxy` for the proxy in front of it (IAP).
- A reply that began and never ended in time (`controller_timeout`) or was longer than our
  cap (`reply_too_large`) is reported once as well: a controller that streams replies without
  end is broken or hostile, and every retry would cost the same time or memory again.
Each report is one PROGRESS message the supervisor turns into a failure reason.
"""

import contextlib
import select
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from workers.child_args import UNAVAILABLE_REPORT_S, ControllerArgs
from workers.controller.api import Controller, open_controller
from workers.controller.credentials import credential_of
from workers.controller.model import ApiMismatch, ControllerError, ErrorCode
from workers.messages import ApiMismatchReport, BrokenReply, ControllerAvailability, ControllerState, Unauthenticated
from workers.runtime import ChildContext

# The controller refusing our credentials: retrying with the same token will not help.
REFUSED_CODES = frozenset({ErrorCode.UNAUTHENTICATED, ErrorCode.PERMISSION_DENIED})
# Replies we stopped reading (workers.controller.bounded): each is reported under its own code.
BROKEN_REPLY_CODES = frozenset({ErrorCode.CONTROLLER_TIMEOUT, ErrorCode.REPLY_TOO_LARGE})

Clock = Callable[[], float]


@contextlib.contextmanager
def connect(ctx: ChildContext) -> Iterator[Controller]:
    """The child's one controller connection, from its `target` argument."""
    args: ControllerArgs = ctx.args
    with open_controller(args.target, ctx.deadline) as controller:
        yield controller


def wait_or_stop(ctx: ChildContext, seconds: float) -> bool:
    """Wait up to `seconds` (capped by the deadline; a drain ends it early); True if a stop was requested."""
    if not (ctx.stop.requested() or ctx.drain.requested()):
        select.select([ctx.stop.fd, ctx.drain.fd], [], [], max(0.0, ctx.deadline.cap(seconds)))
    return ctx.stop.requested() or ctx.deadline.expired()


def poll_every(ctx: ChildContext, interval_s: float) -> Iterator[int]:
    """Yield once at once and then every `interval_s`, until a stop or the deadline.

    The interval runs from the start of one poll to the start of the next, so a slow
    call does not stretch the cadence; a poll that overran its interval is followed at once.
    A drain (SIGUSR1) asks for one last poll, begun after it, and then the end.
    """
    polls = 0
    while not (ctx.stop.requested() or ctx.deadline.expired()):
        started, last = time.monotonic(), ctx.drain.requested()
        yield polls
        polls += 1
        if last:
            return
        if wait_or_stop(ctx, interval_s - (time.monotonic() - started)):
            return


@dataclass
class Outage:
    """Tracks how long the controller has been unavailable, and reports a long outage once."""

    bound_s: float = UNAVAILABLE_REPORT_S
    clock: Clock = time.monotonic
    since: float | None = None
    reported: bool = False
    mismatch_reported: bool = False
    refused_reported: bool = False
    broken_reply_reported: bool = False

    @property
    def hopeless(self) -> bool:
        """Whether a failure retrying cannot fix was reported: a foreign API, a refused token, a broken reply."""
        return self.mismatch_reported or self.refused_reported or self.broken_reply_reported

    def failed(self, code: ErrorCode) -> float | None:
        """Record a failed call; return the outage's length the first time it exceeds the bound."""
        if code not in (ErrorCode.UNAVAILABLE, ErrorCode.DEADLINE_EXCEEDED):
            return None
        now = self.clock()
        if self.since is None:
            self.since = now
        if not self.reported and now - self.since >= self.bound_s:
            self.reported = True
            return now - self.since
        return None

    def succeeded(self) -> float | None:
        """Record a successful call; return how long the outage lasted if one was reported."""
        lasted = None if self.since is None or not self.reported else self.clock() - self.since
        self.since, self.reported = None, False
        return lasted


def outage_for(ctx: ChildContext) -> Outage:
    """An Outage with the bound from the child's args (`unavailable_report_s`)."""
    args: ControllerArgs = ctx.args
    return Outage(bound_s=args.unavailable_report_s)


def call_failed(ctx: ChildContext, outage: Outage, event: str, exc: ControllerError, **fields: Any) -> None:
    """Log a failed call as `event` with its code, and report a long outage or an API mismatch once."""
    ctx.log.warning(event, code=exc.code, method=exc.method, details=exc.details, **fields)
    if exc.code is ErrorCode.API_MISMATCH and not outage.mismatch_reported:
        outage.mismatch_reported = True
        field = exc.field if isinstance(exc, ApiMismatch) else ""
        report_api_mismatch(ctx, exc.method, field, exc.details)
    if exc.code in REFUSED_CODES and not outage.refused_reported:
        outage.refused_reported = True
        refused = Unauthenticated(exc.code, exc.method, credential_of(exc), exc.details)
        ctx.log.error("controller_unauthenticated", **refused.body)
        ctx.channel.send(refused)
    if exc.code in BROKEN_REPLY_CODES and not outage.broken_reply_reported:
        outage.broken_reply_reported = True
        report_broken_reply(ctx, exc.code, exc.method, exc.details)
    lasted = outage.failed(exc.code)
    if lasted is not None:
        ctx.log.error("controller_unavailable", for_s=round(lasted, 1), bound_s=outage.bound_s)
        ctx.channel.send(ControllerAvailability(ControllerState.UNAVAILABLE, round(lasted, 1)))


def report_api_mismatch(ctx: ChildContext, method: str, field: str, details: str) -> None:
    """The one report of an API we do not speak: an error event and the `api_mismatch` message."""
    ctx.log.error("iris_api_mismatch", method=method, field=field, details=details)
    ctx.channel.send(ApiMismatchReport(method, field, details))


def report_broken_reply(ctx: ChildContext, code: ErrorCode, method: str, details: str) -> None:
    """The one report of a reply we stopped reading: an error event and a message named by its code.
    None for a reply the run's own deadline cut short (a call's time limit is never past it, a log
    follower's included): it timed out for want of time, not for the controller, and the run is a
    timeout (124), not exit 3."""
    if code is ErrorCode.CONTROLLER_TIMEOUT and ctx.deadline.expired():
        return
    ctx.log.error(code.value, method=method, details=details)
    ctx.channel.send(BrokenReply(code, method, details))


def call_succeeded(ctx: ChildContext, outage: Outage) -> None:
    lasted = outage.succeeded()
    if lasted is not None:
        ctx.log.info("controller_available_again", after_s=round(lasted, 1))
        ctx.channel.send(ControllerAvailability(ControllerState.REACHABLE, round(lasted, 1)))
