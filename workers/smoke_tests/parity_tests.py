"""The tests that bring the suite to parity with Iris's own: an accelerator probe, a region,
a nested job, non-preemptible capacity. Each is planned from the cluster's shape; one the
cluster cannot serve at all is planned as skipped, with the reason.

- accelerator_probe: one job per accelerator kind offered, on that group; the task reports
  what it sees (TPU: the TPU runtime's variables and chip count; GPU: `nvidia-smi -L`, else
  CUDA_VISIBLE_DEVICES) and checks it against what the group promises (variant, chips per
  host). Where the cluster gives no device environment (a local Iris's fake slices), the
  task says so and the check is where it ran. `probe = "jax"` counts devices with JAX instead.
- region_constrained: a CPU job constrained to one value of the region attribute (the
  config's region, else the last of the cluster's regions in name order); skipped when
  the cluster has a single region and the config names none.
- nested_constraints: a CPU job constrained like region_constrained (or to non-preemptible
  capacity when there are no regions) whose task submits a child job through the
  controller; both must succeed and run where the parent's constraint holds (the child
  by inheritance, where the backend inherits that key).
- non_preemptible: a CPU job constrained to `preemptible=false`.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

from workers.controller.model import Constraint, JobRequest
from workers.smoke_tests.shape import DEFAULT_REGION_ATTRIBUTE, Offer, Shape
from workers.smoke_tests.suite import BACKSTOP_MARGIN_S, PlannedTest

PARITY_TESTS = ("accelerator_probe", "region_constrained", "nested_constraints", "non_preemptible")
PROBES = ("env", "jax")

_WHERE = 'echo "$0 on ${IRIS_WORKER_ID:-?}: $*"'
_ECHO = 'echo "{name} task on ${IRIS_WORKER_ID:-?} ok"'
_TPU_PROBE = """
v="${TPU_ACCELERATOR_TYPE:-}"; c="${TPU_VISIBLE_CHIPS:-}"
if [ -z "$v$c" ]; then echo "probe tpu on $IRIS_WORKER_ID: no TPU runtime environment (a fake slice)"; exit 0; fi
n=$(printf '%s' "$c" | tr ',' '\\n' | grep -c .)
echo "probe tpu on $IRIS_WORKER_ID: TPU_ACCELERATOR_TYPE=$v TPU_WORKER_ID=${TPU_WORKER_ID:-} chips=$n"
if [ "$v" != "{variant}" ]; then echo "probe tpu: variant $v, the group promises {variant}"; exit 5; fi
if [ "{chips}" != 0 ] && [ "$n" != "{chips}" ]; then echo "probe tpu: $n chips, the group promises {chips}"; exit 6; fi
"""
_GPU_PROBE = """
if command -v nvidia-smi >/dev/null 2>&1; then n=$(nvidia-smi -L | grep -c '^GPU'); src=nvidia-smi
elif [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then n=$(printf '%s' "$CUDA_VISIBLE_DEVICES" | tr ',' '\\n' | grep -c .); \
src=CUDA_VISIBLE_DEVICES
else echo "probe gpu on $IRIS_WORKER_ID: no GPU visible (a fake host)"; exit 0; fi
echo "probe gpu on $IRIS_WORKER_ID: $n GPUs ($src)"
if [ "{chips}" != 0 ] && [ "$n" != "{chips}" ]; then echo "probe gpu: $n GPUs, the group promises {chips}"; exit 6; fi
"""
_JAX_PROBE = """
import jax
n = jax.local_device_count()
kinds = sorted({d.platform for d in jax.local_devices()})
print(f"probe jax: {n} local devices {kinds}")
assert "{device}" in kinds, f"no {device} device: {kinds}"
assert {chips} == 0 or n == {chips}, f"{n} devices, the group promises {chips}"
"""


@dataclass(frozen=True)
class ParitySettings:
    region: str = ""  # the region to constrain to; empty = discovered
    region_attribute: str = DEFAULT_REGION_ATTRIBUTE
    probe: str = "env"  # env | jax
    # Constraint keys a child job inherits on this backend; None = every key.
    inherited_keys: frozenset[str] | None = None


def parity_tests(
    names: Sequence[str], shape: Shape, settings: ParitySettings, job_timeout_s: float
) -> list[PlannedTest]:
    cpu = JobRequest("", (), device="cpu", timeout_s=job_timeout_s + BACKSTOP_MARGIN_S)
    plan = {
        "accelerator_probe": lambda: _probe(shape, settings, cpu),
        "region_constrained": lambda: _constrained("region_constrained", _region(shape, settings), cpu),
        "non_preemptible": lambda: _constrained("non_preemptible", _non_preemptible(shape), cpu),
        "nested_constraints": lambda: _nested(shape, settings, cpu),
    }
    return [plan[name]() for name in names]


def _probe(shape: Shape, settings: ParitySettings, base: JobRequest) -> PlannedTest:
    offers = shape.accelerators()
    if not offers:
        return PlannedTest("accelerator_probe", [], skip="the cluster offers no accelerator (only cpu groups)")
    requests = [
        replace(base, name=f"accelerator_probe-{o.device}", argv=_probe_argv(o, settings.probe), device=o.device,
                variant=o.variant, count=o.chips_per_host, constraints=(Constraint("scale-group", "eq", o.name),))
        for o in offers
    ]  # fmt: skip
    return PlannedTest("accelerator_probe", requests, placement=True)


def _probe_argv(offer: Offer, probe: str) -> tuple[str, ...]:
    chips = str(offer.chips_per_host)
    if probe == "jax":
        return ("python3", "-c", _JAX_PROBE.replace("{device}", offer.device).replace("{chips}", chips))
    script = _TPU_PROBE if offer.device == "tpu" else _GPU_PROBE
    return ("sh", "-c", script.replace("{variant}", offer.variant).replace("{chips}", chips))


def _region(shape: Shape, settings: ParitySettings) -> Constraint | str:
    key = settings.region_attribute
    regions = shape.values(key, "cpu")
    if settings.region:
        if settings.region not in regions:
            return f"no cpu group in {key}={settings.region} (the cluster has {regions or 'none'})"
        return Constraint(key, "eq", settings.region)
    if len(regions) < 2:
        return f"the cluster has {len(regions)} {key} value(s) {regions} and the config names no region"
    return Constraint(key, "eq", regions[-1])


def _non_preemptible(shape: Shape) -> Constraint | str:
    if "false" not in shape.values("preemptible", "cpu"):
        return "the cluster has no non-preemptible cpu capacity"
    return Constraint("preemptible", "eq", "false")


def _constrained(name: str, constraint: Constraint | str, base: JobRequest) -> PlannedTest:
    if isinstance(constraint, str):
        return PlannedTest(name, [], skip=constraint)
    argv = ("sh", "-c", _ECHO.replace("{name}", name))
    return PlannedTest(name, [replace(base, name=name, argv=argv, constraints=(constraint,))], placement=True)


def _nested(shape: Shape, settings: ParitySettings, base: JobRequest) -> PlannedTest:
    constraint = _region(shape, settings)
    if isinstance(constraint, str):
        constraint = _non_preemptible(shape)
    if isinstance(constraint, str):
        return PlannedTest("nested_constraints", [], skip=f"no constraint to inherit: {constraint}")
    child = replace(base, name="child", argv=("sh", "-c", _ECHO.replace("{name}", "nested child")))
    parent = replace(base, name="nested_constraints", constraints=(constraint,), child=child)
    inherited = settings.inherited_keys is None or constraint.key in settings.inherited_keys
    return PlannedTest("nested_constraints", [parent], placement=True, child_inherits=inherited)
