"""ECS field names for our events (common/ecs.py)."""

import orjson

from common import ecs


def _event(**extra: object) -> dict[str, object]:
    return {
        "timestamp": "2026-11-29T06:51:51.465936Z",
        "level": "info",
        "event": "child_exited",
        "run_id": "20261129T065151Z-abc123",
        "pid": 4242,
        "role": "supervisor",
        **extra,
    }


def test_the_fields_every_event_has_get_their_ecs_names_first() -> None:
    out = ecs.to_ecs(_event())
    assert list(out)[:3] == ["@timestamp", "log.level", "message"]
    assert out == {
        "@timestamp": "2026-11-29T06:51:51.465936Z",
        "log.level": "info",
        "message": "child_exited",
        "ecs.version": ecs.ECS_VERSION,
        "service.name": "iris-smoke",
        "service.version": ecs.SERVICE_VERSION,
        "host.name": ecs.HOST_NAME,
        "event.dataset": "iris_smoke.events",
        "event.action": "child_exited",
        "process.pid": 4242,
        "labels.run_id": "20261129T065151Z-abc123",
        "labels.role": "supervisor",
    }


def test_a_process_the_event_is_about_is_not_the_logging_process() -> None:
    out = ecs.to_ecs(_event(child="stream:vm-1", child_pid=77, exit_code=-9, reason="SIGKILL"))
    assert out["process.pid"] == 4242
    assert out["iris_smoke.child_pid"] == 77
    assert out["iris_smoke.exit_code"] == -9
    assert out["labels.child"] == "stream:vm-1"
    assert out["event.reason"] == "SIGKILL"


def test_durations_are_nanoseconds_and_outcomes_are_ecs_values() -> None:
    out = ecs.to_ecs(_event(event="phase_finished", duration_s=1.5, outcome="passed"))
    assert out["event.duration"] == 1_500_000_000
    assert out["event.outcome"] == "success"
    assert out["iris_smoke.outcome"] == "passed"
    assert ecs.to_ecs(_event(outcome="timeout"))["event.outcome"] == "failure"
    assert ecs.to_ecs(_event(outcome="cancelled"))["event.outcome"] == "unknown"


def test_errors_and_identifiers() -> None:
    out = ecs.to_ecs(_event(exception="Traceback ...", error="boom", vm="vm-3", host=2, run_id=None))
    assert out["error.stack_trace"] == "Traceback ..."
    assert out["error.message"] == "boom"
    assert out["labels.vm"] == "vm-3"
    assert out["labels.host"] == "2"  # ECS labels are keywords
    assert "labels.run_id" not in out


def test_the_input_is_untouched_and_the_output_serialises() -> None:
    event = _event(truncated=["exception"], nested={"a": [1, 2]})
    before = dict(event)
    line = orjson.dumps(ecs.to_ecs(event))
    assert event == before
    assert orjson.loads(line)["iris_smoke.nested"] == {"a": [1, 2]}
