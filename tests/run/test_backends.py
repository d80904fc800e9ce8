"""One backend per cluster kind: the registry is the only place that names a kind, and nothing
else switches on one (README "How it is built": where a new cluster kind goes)."""

import dataclasses
import re

from supervisor.backends.base import Backend, ClusterChild, backend_of
from supervisor.backends.registry import BACKENDS, ClusterKind
from supervisor.config import RunConfig
from tests.helpers.supervisor_proc import REPO_ROOT

REGISTRY = REPO_ROOT / "supervisor" / "backends" / "registry.py"
# A kind or a cluster child's mode compared by name: `mode == "gcp"`, `.get("mode") in ("start", ...)`.
MODE_SWITCH = re.compile(r"""\bmode["']?\)?\s*(==|!=|(not\s+)?in\s*[(\[{])\s*["']""")


def _sources() -> list[str]:
    files = [p for d in ("supervisor", "workers", "common") for p in sorted((REPO_ROOT / d).rglob("*.py"))]
    return [f"{p.relative_to(REPO_ROOT)}:{n}: {line.strip()}" for p in files if p != REGISTRY
            for n, line in enumerate(p.read_text().splitlines(), 1)]  # fmt: skip


def test_no_cluster_kind_is_named_outside_the_registry() -> None:
    """`ClusterKind.` appears only in the registry: the run, preflight and config ask the kind's backend."""
    named = [line for line in _sources() if "ClusterKind." in line]
    assert not named, "\n".join(named)


def test_no_cluster_mode_is_switched_on_by_name() -> None:
    """The cluster child looks its mode up (workers.cluster.MODES); the run asks the backend."""
    switches = [line for line in _sources() if MODE_SWITCH.search(line)]
    assert not switches, "\n".join(switches)


def test_every_kind_has_a_backend_whose_cluster_modes_the_cluster_child_knows() -> None:
    """Each kind's module gives a Backend; each mode it names for `workers.cluster` is in that child's MODES."""
    from workers.cluster import MODES

    assert set(BACKENDS) == set(ClusterKind)
    named = set()
    for kind in ClusterKind:
        backend = backend_of(kind)
        assert isinstance(backend, Backend) and backend_of(kind) is backend, kind
        for config in _configs(kind):
            child = backend.cluster_child(config)
            if child.entrypoint == ClusterChild("").entrypoint:
                named.add(child.mode)
    assert named == set(MODES), named


def _configs(kind: ClusterKind) -> list[RunConfig]:
    """Started, kept, attached: every cluster child a kind may run."""
    started = RunConfig(cluster=kind)
    return [started, dataclasses.replace(started, keep=True), dataclasses.replace(started, controller="unix:/x")]
