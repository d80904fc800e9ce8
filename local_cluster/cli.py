"""`iris-smoke local-cluster`: run the embedded local cluster in the foreground, or read its logs.

    iris-smoke local-cluster --state-dir DIR [--config FILE] [--prefix P]
    iris-smoke local-cluster logs --state-dir DIR [--follow] [--timestamps] [--since TS]
                                  [--exit-on-stdin-close] VM CONTAINER

Serving: listens on a Unix socket in a new private (0700) directory, never on TCP (see
private_socket.py), prints its address `unix:/…/controller.sock` as the only line on
stdout, writes it to DIR/controller.addr (atomically) and says on stderr how to attach a
run. Its own logs go to stderr and DIR/local-cluster.events.jsonl. SIGTERM or SIGINT
stops every VM host, then the server, removes the socket's directory and exits 0 with
nothing left running. If IRIS_SMOKE_DEADLINE_UNIX is set (a supervised run), the cluster
also stops by itself at that deadline. VM hosts and tasks get a minimal environment
(environment.py), not this process's.

Exit codes: 0 stopped on request; 1 the control loop crashed; 2 bad arguments or config;
3 the cluster could not start (no socket directory).
"""

import argparse
import os
import sys
import time
from pathlib import Path

from common import env
from common.errors import ConfigError
from common.outcome import ExitCode
from common.stop import TERM_OR_INT, StopRequest
from local_cluster import layout, naming
from local_cluster.config import ClusterConfig, load_config

WAKE_S = 1.0


def _prefix(text: str) -> str:
    if not naming.PREFIX.match(text):
        raise argparse.ArgumentTypeError(f"must match {naming.PREFIX.pattern}, got {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iris-smoke local-cluster",
        description="The embedded local cluster. `local-cluster logs --help` for its container logs.",
    )
    parser.add_argument("--state-dir", required=True, type=Path, help="logs, VM directories, controller.addr")
    parser.add_argument("--config", type=Path, help="TOML scale-group config (default: the packaged one)")
    parser.add_argument("--prefix", type=_prefix, default="local", help="VM name prefix (default: local)")
    parser.add_argument("--check-config", action="store_true", help="validate the config and exit")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


def main(argv: list[str]) -> int:
    if argv[:1] == ["logs"]:
        from local_cluster.logs_command import main as logs_main  # no grpc on the log path

        return logs_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"local-cluster: config error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if args.check_config:
        print(f"local-cluster: config OK ({', '.join(g.name for g in config.scale_groups)})", file=sys.stderr)
        return 0
    args.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    from common import logs  # structlog: not on the `logs` command's path

    logs.configure(
        role="local-cluster", run_id=os.environ.get(env.RUN_TAG),
        events_path=args.state_dir / layout.EVENTS_FILE, stdout_fd=2, level=args.log_level,
    )  # fmt: skip
    return serve(config, args.state_dir, args.prefix)


def serve(config: ClusterConfig, state_dir: Path, prefix: str) -> int:
    from local_cluster.server import BindError, LocalCluster  # grpc only when serving

    stop = StopRequest()
    stop.on_signals(TERM_OR_INT)
    cluster = LocalCluster(config, state_dir, prefix, crashed=stop)
    try:
        address = cluster.start()
    except BindError as exc:
        print(f"local-cluster: {exc}", file=sys.stderr)
        cluster.stop()
        return ExitCode.INFRA
    try:
        # The hint first: the address on stdout is the readiness handshake, so whoever
        # reads it can count on everything written before it.
        print(attach_hint(address), file=sys.stderr, flush=True)
        print(address, flush=True)
        deadline = float(os.environ.get(env.DEADLINE_UNIX, "inf"))
        while not stop.wait(min(WAKE_S, max(0.0, deadline - time.time()))):
            if time.time() >= deadline:
                stop.request("deadline")
    finally:
        cluster.stop()
    cluster.events("local_cluster_exit", reason=stop.reason)
    return 1 if stop.reason == "control_loop_crashed" else 0


def attach_hint(address: str) -> str:
    socket = address.removeprefix("unix:")
    return (
        f"local-cluster: serving on {socket} (only this user can connect)\n"
        f"  attach a run:  iris-smoke run --controller {address}"
    )
