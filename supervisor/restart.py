"""When to restart a child that died unexpectedly: pure decisions, testable with a fake clock.

A child that stays up for `stable_after_s` has its failure streak forgotten, so a stream
that drops once a day never climbs to the maximum backoff. A child that fails
`max_failures` times within `failure_window_s` is given up on: restarting it forever
would only hide the fault and burn the deadline.
"""

import enum
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from common.backoff import capped_exponential
from common.child_exit import NO_RESTART


class RestartMode(enum.StrEnum):
    NEVER = "never"
    ON_FAILURE = "on_failure"
    ALWAYS = "always"


@dataclass(frozen=True)
class RestartPolicy:
    mode: RestartMode = RestartMode.ON_FAILURE
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    jitter: float = 0.2  # up to this fraction less, so children that died together do not restart together
    stable_after_s: float = 60.0
    max_failures: int = 5
    failure_window_s: float = 300.0


class Action(enum.StrEnum):
    RESTART = "restart"
    GIVE_UP = "give_up"
    DONE = "done"


@dataclass(frozen=True)
class Decision:
    action: Action
    delay_s: float = 0.0


@dataclass
class FailureHistory:
    streak: int = 0
    times: deque[float] = field(default_factory=deque)


def backoff_delay(policy: RestartPolicy, streak: int, rng: Callable[[], float] = random.random) -> float:
    """The policy's capped exponential backoff; `streak` counts from 1."""
    return capped_exponential(streak - 1, policy.backoff_initial_s, policy.backoff_max_s, policy.jitter, rng)


def decide(
    policy: RestartPolicy,
    history: FailureHistory,
    *,
    now: float,
    uptime_s: float,
    exit_code: int,
    rng: Callable[[], float] = random.random,
) -> Decision:
    """Record one exit in `history` and say what to do about it."""
    if exit_code == 0 and policy.mode is not RestartMode.ALWAYS:
        return Decision(Action.DONE)
    if policy.mode is RestartMode.NEVER or exit_code in NO_RESTART:
        return Decision(Action.GIVE_UP if exit_code != 0 else Action.DONE)
    if uptime_s >= policy.stable_after_s:
        history.streak = 0
    history.streak += 1
    history.times.append(now)
    while history.times and history.times[0] < now - policy.failure_window_s:
        history.times.popleft()
    if len(history.times) >= policy.max_failures:
        return Decision(Action.GIVE_UP)
    return Decision(Action.RESTART, backoff_delay(policy, history.streak, rng))
