"""Reconnect backoff: the common capped exponential, reset after a success (no processes)."""

import pytest

from common.backoff import capped_exponential
from tests.helpers.clock import FakeClock
from workers.stream.backoff import Backoff


def test_delay_doubles_until_the_cap() -> None:
    delays = [capped_exponential(a, base_s=0.5, cap_s=4.0, jitter=0.0, rand=lambda: 0.9) for a in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_jitter_takes_off_at_most_its_share() -> None:
    assert capped_exponential(3, 1.0, 100.0, 0.5, rand=lambda: 0.0) == 8.0
    assert capped_exponential(3, 1.0, 100.0, 0.5, rand=lambda: 1.0) == 4.0
    assert capped_exponential(3, 1.0, 100.0, 0.5, rand=lambda: 0.5) == 6.0


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert capped_exponential(10_000, 1.0, 30.0, 0.0, rand=lambda: 0.0) == 30.0


def test_failures_grow_and_a_delivering_connection_resets() -> None:
    clock = FakeClock()
    backoff = Backoff(base_s=1.0, cap_s=8.0, jitter=0.0, reset_after_s=60.0, rand=lambda: 0.0, clock=clock)
    assert [backoff.next_delay(clock.now, False) for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert backoff.next_delay(clock.now, True) == 1.0
    assert backoff.next_delay(clock.now, False) == 2.0


def test_a_long_connection_resets_even_without_lines() -> None:
    clock = FakeClock()
    backoff = Backoff(base_s=1.0, cap_s=8.0, jitter=0.0, reset_after_s=60.0, rand=lambda: 0.0, clock=clock)
    for _ in range(3):
        backoff.next_delay(clock.now, False)
    connected_at = clock.now
    clock.now += 61
    assert backoff.next_delay(connected_at, False) == 1.0


@pytest.mark.parametrize("rand", [0.0, 0.25, 0.999])
def test_delays_stay_within_bounds(rand: float) -> None:
    for attempt in range(20):
        delay = capped_exponential(attempt, 0.5, 30.0, 0.5, rand=lambda: rand)
        assert 0.25 <= delay <= 30.0
