"""Preflight: everything that can be checked before a process is started.

Config and flags merged and validated, the tools the chosen cluster needs found on PATH,
the run directory created, run id and label prefix computed once, the prefix lock taken.
Every failure here is a usage error (exit 2) whose message names the field or flag.
"""

import argparse
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from common import inputs
from common.controller_target import ControllerTarget
from common.errors import ConfigError, UsageError
from common.tokens import token_text
from local_cluster import private_socket
from supervisor.backends.base import backend_of
from supervisor.config import RUN_SETTINGS, RunConfig, load, unknown_test_message
from supervisor.settings import assigned, given

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)


@dataclass(frozen=True)
class RunPlan:
    config: RunConfig
    run_id: str
    run_dir: Path
    prefix: str  # the label prefix: VM names, leftovers, the lock
    # This run's jobs live under it, so its monitors find only its jobs and it terminates
    # only its own: "<root>-<test>" on the embedded cluster, "/<root>/<test>" on Iris.
    job_root: str

    def target(self, address: str = "") -> ControllerTarget:
        """The controller the children talk to (`address` empty until a started cluster says it)."""
        api = backend_of(self.config.cluster).api
        address = address or self.config.controller
        iris = self.config.iris
        return ControllerTarget(
            api, address, self.job_root, token_file=iris.token_file, token_env=iris.token_env, run_id=self.run_id,
            max_reply_bytes=iris.max_reply_bytes, max_log_page_bytes=iris.max_log_page_bytes,
            proxy_token=iris.proxy_token,
            priority_band=self.config.suite.priority_band,
        )  # fmt: skip


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def merged_config(args: argparse.Namespace) -> RunConfig:
    try:
        config = load(Path(args.config) if args.config else None)
    except ConfigError as exc:
        raise UsageError(f"config: {exc}") from None
    config = assigned(config, given(args, RUN_SETTINGS)).expanded()
    check_observe(config, args)
    unknown = config.unknown_tests()
    if unknown:
        raise UsageError(f"--tests: {unknown_test_message(unknown[0])} in the config")
    check_controller(config)
    if config.keep and config.attached:
        raise UsageError("--keep: nothing to keep when attaching with --controller")
    refused = backend_of(config.cluster).keep_refused
    if config.keep and refused:
        raise UsageError(refused)
    return config


def check_observe(config: RunConfig, args: argparse.Namespace) -> None:
    """An observe run runs no tests: a test selection beside it is a contradiction, refused.
    `--observe` overrides the config file's `run.tests` (flags override the file), as `--tests` does."""
    if args.tests is not None and config.observe and not config.only_fleet_checks():
        given = "--observe" if args.observe else "run.observe = true in --config"
        raise UsageError(f"--tests: conflicts with {given}: an observe run submits no job and runs no tests, "
                         "only fleet checks; drop one of them, or name only fleet checks")  # fmt: skip
    if args.observe_s is not None and not config.observe:
        raise UsageError("--observe-s: only for an observe run; add --observe (or run.observe = true)")
    if config.observe and config.observe_s >= config.timeout_s:
        raise UsageError(
            f"--observe-s (run.observe_s): the observation ({config.observe_s:g} s) must end before the deadline "
            f"(--timeout {config.timeout_s:g} s), which also covers the cluster's start and its cleanup"
        )


def check_controller(config: RunConfig) -> None:
    """`--controller` (or cluster.controller): the one place its syntax is checked."""
    if not config.attached:
        return
    # The embedded local cluster listens only on its private Unix socket (its controller
    # is unauthenticated); an ssh cluster's controller may also be at HOST:PORT.
    backend = backend_of(config.cluster)
    try:
        inputs.controller_address(config.controller, iris=backend.iris_controller, tcp=backend.tcp_controller)
        if config.controller.startswith(private_socket.SCHEME):
            private_socket.socket_of(config.controller)
    except (ValueError, private_socket.SocketPathError) as exc:
        raise UsageError(f"--controller: {exc}") from None


def check_tools(config: RunConfig) -> None:
    """What the chosen kind needs (its backend's checks), then the token settings every kind reads."""
    backend_of(config.cluster).check(config)
    _check_token(config)


def _check_token(config: RunConfig) -> None:
    iris = config.iris
    if iris.token_file and iris.token_env:
        raise UsageError("iris.token_env: give the token by token_file or by token_env, not both")
    try:
        if iris.token_file:
            inputs.secret_file(iris.token_file)
    except ValueError as exc:
        raise UsageError(f"iris.token_file: {exc}") from None
    if iris.token_env:
        try:
            token_text(os.environ.get(iris.token_env, ""))
        except ValueError as exc:
            raise UsageError(f"iris.token_env: the environment variable {iris.token_env} {exc}") from None
    _check_proxy_token(config)
    holds_token = bool(iris.token_file or iris.token_env or iris.proxy_token.configured)
    remote_http = config.controller.startswith("http://") and not inputs.loopback_url(config.controller)
    if holds_token and remote_http and not iris.allow_insecure_http:
        raise UsageError(
            f"--controller: {config.controller} is plain http to another host, and the run sends a bearer token; "
            "use https, a tunnel to a loopback port, or set [iris] allow_insecure_http = true"
        )


def _check_proxy_token(config: RunConfig) -> None:
    iris = config.iris
    try:
        if iris.proxy_token_file:
            inputs.secret_file(iris.proxy_token_file)
    except ValueError as exc:
        raise UsageError(f"iris.proxy_token_file: {exc}") from None
    if iris.proxy_token_command and shutil.which(iris.proxy_token_command[0]) is None:
        raise UsageError(
            f"iris.proxy_token_command: {iris.proxy_token_command[0]!r} is not on PATH "
            "(for IAP, install the Google Cloud CLI: gcloud auth print-identity-token)"
        )


def make_run_dir(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise UsageError(f"--run-id: run directory {run_dir} exists already; pick another run id") from None
    except OSError as exc:
        raise UsageError(f"--log-dir: cannot create {run_dir}: {exc.strerror}") from None


def run_id_of(args: argparse.Namespace) -> str:
    """`--run-id`, checked (it names a directory), or a new unique one."""
    run_id: str = args.run_id or new_run_id()
    if not RUN_ID.fullmatch(run_id):
        raise UsageError(f"--run-id: must match {RUN_ID.pattern}, got {run_id!r}")
    return run_id


def plan(args: argparse.Namespace) -> RunPlan:
    config = merged_config(args)
    check_tools(config)
    run_id = run_id_of(args)
    run_dir = Path(config.log_dir) / run_id
    suffix = run_id.rsplit("-", 1)[-1].lower()
    suffix = re.sub(r"[^a-z0-9]", "", suffix)[-6:] or secrets.token_hex(3)
    # A run-unique default prefix: two runs on one host never touch each other's VMs.
    prefix = config.prefix or f"smoke-{suffix}"
    return RunPlan(config, run_id, run_dir, prefix, job_root=f"{prefix}-{suffix}")
