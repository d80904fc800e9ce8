"""Restart, give-up and deadline decisions, with an injected clock and no process."""

from common.child_exit import ChildExit
from common.deadline import Deadline
from common.outcome import ExitCode, FailureReason, Outcome, exit_code_for, outcome_for
from supervisor.restart import Action, FailureHistory, RestartMode, RestartPolicy, backoff_delay, decide
from tests.helpers.clock import FakeClock

POLICY = RestartPolicy(
    backoff_initial_s=1.0,
    backoff_max_s=8.0,
    jitter=0.0,
    stable_after_s=60,
    max_failures=4,
    failure_window_s=100,
)


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_delay(POLICY, n) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]


def test_jitter_only_shortens_within_its_fraction() -> None:
    policy = RestartPolicy(backoff_initial_s=10, jitter=0.2)
    assert backoff_delay(policy, 1, rng=lambda: 0.0) == 10.0
    assert backoff_delay(policy, 1, rng=lambda: 1.0) == 8.0


def test_failures_in_a_window_give_up() -> None:
    history = FailureHistory()
    actions = [decide(POLICY, history, now=t, uptime_s=1, exit_code=1).action for t in (0, 1, 2, 3)]
    assert actions == [Action.RESTART, Action.RESTART, Action.RESTART, Action.GIVE_UP]


def test_failures_outside_the_window_are_forgotten() -> None:
    history = FailureHistory()
    actions = [decide(POLICY, history, now=t, uptime_s=1, exit_code=1).action for t in (0, 50, 120, 170, 240)]
    assert Action.GIVE_UP not in actions


def test_a_stable_run_resets_the_backoff_streak() -> None:
    history = FailureHistory()
    delays = [decide(POLICY, history, now=t, uptime_s=1, exit_code=1).delay_s for t in (0, 1, 2)]
    assert delays == [1, 2, 4]
    assert decide(POLICY, history, now=3 + 200, uptime_s=200, exit_code=1).delay_s == 1


def test_clean_exit_is_done_and_config_errors_are_not_restarted() -> None:
    assert decide(POLICY, FailureHistory(), now=0, uptime_s=1, exit_code=0).action is Action.DONE
    assert decide(POLICY, FailureHistory(), now=0, uptime_s=1, exit_code=ChildExit.CONFIG).action is Action.GIVE_UP
    never = RestartPolicy(mode=RestartMode.NEVER)
    assert decide(never, FailureHistory(), now=0, uptime_s=1, exit_code=-9).action is Action.GIVE_UP
    always = RestartPolicy(mode=RestartMode.ALWAYS, jitter=0)
    assert decide(always, FailureHistory(), now=0, uptime_s=1, exit_code=0).action is Action.RESTART


def test_deadline_counts_down_on_the_injected_clock() -> None:
    clock = FakeClock()
    deadline = Deadline.after(30, clock)
    assert deadline.remaining() == 30
    clock.now += 25
    assert deadline.cap(10) == 5
    assert not deadline.expired()
    clock.now += 5
    assert deadline.expired() and deadline.remaining() == 0


def test_outcome_and_exit_code_follow_the_most_severe_reason() -> None:
    assert outcome_for([]) is Outcome.PASSED
    assert exit_code_for(Outcome.PASSED, []) is ExitCode.PASSED
    reasons = [FailureReason.TEST_FAILED, FailureReason.DEADLINE_EXCEEDED]
    assert outcome_for(reasons) is Outcome.TIMEOUT and exit_code_for(Outcome.TIMEOUT, reasons) == 124
    reasons.append(FailureReason.PROCESS_LEAK)
    assert outcome_for(reasons) is Outcome.ERROR and exit_code_for(Outcome.ERROR, reasons) == 3
    assert exit_code_for(Outcome.CANCELLED, [FailureReason.SIGINT]) == 130
    assert exit_code_for(Outcome.CANCELLED, [FailureReason.SIGTERM]) == 143
