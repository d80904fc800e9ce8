"""The layering of the run's modules: one errors module, no cycle through the command line."""

import ast
import re
import subprocess
import sys
import typing
from pathlib import Path

from tests.helpers.supervisor_proc import REPO_ROOT


def _imports(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_preflight_and_locks_do_not_import_the_command_line() -> None:
    """Errors live in common.errors, so preflight, the run and the locks never import supervisor.cli."""
    for module in ("supervisor.preflight", "supervisor.run", "supervisor.lock", "supervisor.canary.lock"):
        assert "supervisor.cli" not in _imports(module), module


def test_one_class_per_cross_module_error() -> None:
    """The run's, the canary's and the local cluster's config errors and lock refusals are the same classes."""
    from common import errors
    from local_cluster import config as cluster_config
    from supervisor import config as run_config
    from supervisor import lock as run_lock
    from supervisor.canary import config as canary_config
    from supervisor.canary import lock as canary_lock

    assert run_config.ConfigError is canary_config.ConfigError is cluster_config.ConfigError is errors.ConfigError
    assert run_lock.LockHeld is canary_lock.LockHeld is errors.LockHeld


def test_run_help_reads_the_defaults_and_hides_the_demo() -> None:
    """`run --help` quotes the config dataclass's defaults; the demo flags are for tests and benches only."""
    from supervisor.config import RunConfig
    from supervisor.run_cli import build_parser

    text = build_parser().format_help()
    assert f"default {RunConfig.timeout_s:g}" in text and "--demo-streams" not in text


def test_no_supervisor_module_loads_grpc_or_the_http_client() -> None:
    """The supervisor forks its children: gRPC and urllib3 are loaded only after the fork, in them."""
    code = (
        "import importlib, pkgutil, sys, supervisor\n"
        "for m in pkgutil.walk_packages(supervisor.__path__, 'supervisor.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    loaded = {name.split(".")[0] for name in out.stdout.split()}
    assert "supervisor.smoke" in out.stdout.split() and "supervisor.canary.loop" in out.stdout.split()
    assert not loaded & {"grpc", "urllib3", "google"}, sorted(loaded & {"grpc", "urllib3", "google"})


def test_the_log_reader_preloaded_in_the_supervisor_loads_no_http_client() -> None:
    """workers.log_reader is preloaded (its socket is bound before the HTTP client is imported, in the child)."""
    loaded = {name.split(".")[0] for name in _imports("workers.log_reader")}
    assert not loaded & {"grpc", "urllib3", "google"}, sorted(loaded & {"grpc", "urllib3", "google"})


PACKAGES = ("iris_smoke", "supervisor", "workers", "common", "local_cluster", "iris_smoke_api")


def _module_files() -> dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def _import_graph() -> dict[str, set[str]]:
    """Each project module -> the project modules it imports, at its top or inside a function
    (a lazy import is still a dependency). Importing a submodule implies its parent packages,
    which is no edge of its own: `from pkg import sub` is an edge to `pkg.sub` alone."""
    files = _module_files()
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in files]
                targets = subs if len(subs) == len(node.names) else [node.module, *subs]
            else:
                continue
            deps |= {t for t in targets if t in files and not name.startswith(f"{t}.") and t != name}
        graph[name] = deps
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, edges = work[-1]
            child = next((c for c in edges if c not in index or c in stack), None)
            if child is not None and child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child is not None:
                low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    at = stack.index(node)
                    component, stack[at:] = stack[at:], []
                    if len(component) > 1:
                        circles.append(sorted(component))
    return circles


def test_no_import_circle_among_the_project_modules() -> None:
    """Every module can be read bottom up: no two modules import each other, directly or round a ring."""
    assert _circles(_import_graph()) == []


def test_the_circle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == [["a", "b", "c"]]


def test_common_and_local_cluster_import_nothing_from_the_supervisor() -> None:
    """`common/` and `local_cluster/` sit below the supervisor: they import nothing from `supervisor/`."""
    upward = {
        name: sorted(d for d in deps if d.split(".")[0] == "supervisor")
        for name, deps in _import_graph().items()
        if name.split(".")[0] in ("common", "local_cluster")
    }
    assert {name: deps for name, deps in upward.items() if deps} == {}


def test_the_packages_import_downwards_only() -> None:
    """The README's order: a package imports only from itself and the packages after it."""
    order = ("iris_smoke", "supervisor", "workers", "local_cluster", "common", "iris_smoke_api")
    rank = {package: i for i, package in enumerate(order)}
    upward = sorted(
        f"{name} -> {dep}"
        for name, deps in _import_graph().items()
        for dep in deps
        if rank[dep.split(".")[0]] < rank[name.split(".")[0]]
    )
    assert upward == []


# A set of finished states written out: SUCCEEDED ... UNSCHEDULABLE within one expression.
_FINISHED_SET = re.compile(r"SUCCEEDED[^()]{0,200}?FAILED[^()]{0,200}?KILLED[^()]{0,200}?UNSCHEDULABLE", re.S)


def test_one_job_state_type_and_one_finished_set() -> None:
    """The embedded cluster and the children share one JobState and TaskState (by name), and the
    finished sets are written once (`common/states.py`). `iris_child.py` runs inside an Iris task,
    beside none of our packages, and keeps its own copy."""
    from common import states
    from local_cluster import jobs
    from local_cluster import model as cluster_model
    from workers.controller import model

    assert model.JobState is states.JobState is typing.get_type_hints(cluster_model.Job)["state"]
    assert model.TaskState is states.TaskState is typing.get_type_hints(cluster_model.Task)["state"]
    assert model.job_finished is states.job_finished is jobs.job_finished
    written = sorted(
        str(path.relative_to(REPO_ROOT))
        for path in _module_files().values()
        for _ in _FINISHED_SET.finditer(path.read_text())
        if "iris_smoke_api" not in path.parts and path.name != "iris_child.py"
    )
    assert written == ["common/states.py", "common/states.py"]
