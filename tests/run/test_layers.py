"""The layering of the run's modules: one errors module, no cycle through the command line."""

import subprocess
import sys

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
    from supervisor.cli import build_parser
    from supervisor.config import RunConfig

    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    text = run.format_help()
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
