"""The smoke suite as data: which jobs each test launches and what it expects of them.

Plain protobuf messages and no RPC, so the whole suite is built (and a bad config test
rejected) before the first job is submitted.
- simple: one task on the accelerator group, prints and exits 0;
- concurrent: three such jobs, submitted together (they queue or scale up);
- coscheduled: replicas = hosts per slice, group_by tpu-name; every rank checks its index,
  the task count and that it runs on the host of the same index;
- config tests: {name, argv, device, variant, count, replicas, group_by, constraints,
  expect}, as `supervisor.config.TestSpec.as_args()` gives them.
Job names are `<job_prefix><test>[-<n>]`, so the monitors find this run's jobs by prefix.
Entrypoints are POSIX sh, not Python: they run on the VM host, which has its own image.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.duration_pb2 import Duration

from common.deadline import Deadline
from iris_smoke_api.v1 import controller_pb2 as pb
from workers import controller_client as cc

STANDARD_TESTS = ("simple", "concurrent", "coscheduled")
CONCURRENT_JOBS = 3
# The controller's own timeouts are a backstop for a tests child that died without
# cleaning up; they fire after ours, so our timer decides the outcome.
BACKSTOP_MARGIN_S = 30.0

_DEVICES = ("cpu", "gpu", "tpu")
_OPS = {
    "eq": pb.CONSTRAINT_OP_EQ,
    "ne": pb.CONSTRAINT_OP_NE,
    "exists": pb.CONSTRAINT_OP_EXISTS,
    "not_exists": pb.CONSTRAINT_OP_NOT_EXISTS,
}

_SIMPLE = 'echo "simple task $IRIS_TASK_INDEX on $IRIS_WORKER_ID ok"'
_CONCURRENT = 'echo "concurrent job $IRIS_JOB_ID on $IRIS_WORKER_ID ok"'
# Each rank checks what a multi-host program relies on: the task count, and that task i
# runs on host i of the slice (workers are named `<slice>-w<i>`, local_cluster/naming.py).
_COSCHEDULED = """
i="$IRIS_TASK_INDEX"; n="$IRIS_NUM_TASKS"; w="$IRIS_WORKER_ID"
if [ -z "$i" ] || [ -z "$w" ]; then echo "cosched task: IRIS_TASK_INDEX or IRIS_WORKER_ID unset"; exit 2; fi
if [ "$n" != "{hosts}" ]; then echo "cosched task $i/$n on $w: expected {hosts} tasks"; exit 3; fi
case "$w" in
  *-w"$i") ;;
  *) echo "cosched task $i/$n on $w: host index does not match task index"; exit 4;;
esac
echo "cosched task $i/$n on $w ok"
"""


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Accelerator:
    device: str  # cpu | gpu | tpu
    variant: str
    hosts_per_slice: int


@dataclass
class PlannedTest:
    """One test: the jobs it launches, what it expects of them, and how it is doing."""

    name: str
    requests: list[pb.LaunchJobRequest]
    expect: cc.JobState = cc.JobState.SUCCEEDED
    check_placement: bool = False
    job_ids: list[str] = field(default_factory=list)
    error: str = ""
    started: float = 0.0
    ends: Deadline | None = None
    done: bool = False


# ---------------------------------------------------------------- building the suite


def _device(kind: str, variant: str = "", count: int = 0) -> pb.ResourceSpec:
    if kind == "tpu":
        return pb.ResourceSpec(device=pb.DeviceConfig(tpu=pb.TpuDevice(variant=variant, count=count)))
    if kind == "gpu":
        return pb.ResourceSpec(device=pb.DeviceConfig(gpu=pb.GpuDevice(variant=variant, count=count)))
    return pb.ResourceSpec(device=pb.DeviceConfig(cpu=pb.CpuDevice()))


def _duration(seconds: float) -> Duration:
    return Duration(seconds=int(seconds), nanos=int((seconds % 1) * 1e9))


def _request(
    name: str, argv: Sequence[str], resources: pb.ResourceSpec, job_timeout_s: float, **extra: Any
) -> pb.LaunchJobRequest:
    backstop = _duration(job_timeout_s + BACKSTOP_MARGIN_S)
    return pb.LaunchJobRequest(
        name=name, entrypoint=list(argv), resources=resources,
        scheduling_timeout=backstop, timeout=backstop, **extra,
    )  # fmt: skip


def standard_tests(names: Sequence[str], prefix: str, acc: Accelerator, job_timeout_s: float) -> list[PlannedTest]:
    resources = _device(acc.device, acc.variant)
    runs = []
    for name in names:
        if name == "simple":
            runs.append(PlannedTest(name, [_request(prefix + name, ["sh", "-c", _SIMPLE], resources, job_timeout_s)]))
        elif name == "concurrent":
            requests = [
                _request(f"{prefix}{name}-{i}", ["sh", "-c", _CONCURRENT], resources, job_timeout_s)
                for i in range(CONCURRENT_JOBS)
            ]
            runs.append(PlannedTest(name, requests))
        elif name == "coscheduled":
            argv = ["sh", "-c", _COSCHEDULED.format(hosts=acc.hosts_per_slice)]
            request = _request(
                prefix + name, argv, resources, job_timeout_s,
                replicas=acc.hosts_per_slice, coscheduling=pb.CoschedulingConfig(group_by="tpu-name"),
            )  # fmt: skip
            runs.append(PlannedTest(name, [request], check_placement=True))
        else:
            raise ConfigError(f"standard: unknown test {name!r}; known: {', '.join(STANDARD_TESTS)}")
    return runs


def custom_test(spec: Mapping[str, Any], prefix: str, job_timeout_s: float) -> PlannedTest:
    name = str(spec["name"])
    device = str(spec.get("device", "cpu"))
    if device not in _DEVICES:
        raise ConfigError(f"tests.{name}.device: must be one of {', '.join(_DEVICES)}, got {device!r}")
    argv = [str(a) for a in spec.get("argv", [])]
    if not argv:
        raise ConfigError(f"tests.{name}.argv: must be a non-empty list")
    constraints = []
    for c in spec.get("constraints", []):
        op = str(c.get("op", "eq"))
        if op not in _OPS:
            raise ConfigError(f"tests.{name}.constraints.op: must be one of {', '.join(_OPS)}, got {op!r}")
        constraints.append(pb.Constraint(key=str(c["key"]), op=_OPS[op], value=str(c.get("value", ""))))
    group_by = str(spec.get("group_by", ""))
    request = _request(
        prefix + name, argv, _device(device, str(spec.get("variant", "")), int(spec.get("count", 0))),
        job_timeout_s, replicas=int(spec.get("replicas", 1)), constraints=constraints,
        coscheduling=pb.CoschedulingConfig(group_by=group_by) if group_by else None,
    )  # fmt: skip
    try:
        expect = cc.JobState(str(spec.get("expect", "succeeded")))
    except ValueError:
        raise ConfigError(f"tests.{name}.expect: not a job state: {spec.get('expect')!r}") from None
    return PlannedTest(name, [request], expect=expect)


def pick_accelerator(reply: pb.GetAutoscalerStatusResponse, hosts_override: int | None) -> Accelerator:
    """The group the standard tests run on: TPU first, then GPU, then CPU (config order within a kind)."""
    groups = sorted(reply.groups, key=lambda g: -g.config.accelerator_type)  # TPU=3, GPU=2, CPU=1
    if not groups:
        raise ConfigError("the controller reports no scale groups")
    g = groups[0]
    hosts = hosts_override or g.config.num_vms or 1
    return Accelerator(cc.accelerator_name(g.config.accelerator_type), g.config.accelerator_variant, hosts)
