"""A bastion's view: a real Iris reached through one forwarded port and nothing else.

The run executes in a network namespace of its own (tests.helpers.bastion): its only way out
is one TCP port inside the namespace, relayed over a Unix socket to the controller's port
outside, as `iris cluster dashboard`'s ssh tunnel or a `kubectl port-forward` gives an
operator. The log server Iris registers (a port of its own on this machine) is unreachable
from there, as a VPC-internal address is from a bastion: every log a run reads must come
through the controller's `/proxy/system.log-server/` route.
"""

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.ports import free_port
from tests.helpers.bastion import bastion_argv, running_socket_forward
from tests.helpers.iris import IrisCluster, running_iris_cluster
from tests.helpers.supervisor_proc import SupervisorProc, run_argv, started
from tests.iris.test_iris_tunnel import assert_restored_and_every_line_once, drop_the_tunnel_mid_job, ticks

RUN_EXIT_S = 120.0
FAILING = """
[run]
tests = []

[[tests]]
name = "exits-one"
argv = ["sh", "-c", "echo about to fail; echo the-last-words; exit 1"]
"""


# The module's tests share its real Iris: one xdist worker runs them all, so it starts once.
pytestmark = pytest.mark.xdist_group("bastion")


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisCluster]:
    """One real Iris for the module's runs: each reaches it through a relay of its own and sweeps its jobs."""
    with running_iris_cluster(tmp_path_factory.mktemp("iris")) as cluster:
        yield cluster


def _through_one_port(run_id: str, tmp_path: Path, socket_path: str, *extra: str) -> list[str]:
    """A run's argv that executes inside the bastion, reaching the controller at its one port."""
    port = free_port()
    controller = ("--cluster", "iris", "--controller", f"http://127.0.0.1:{port}", "--timeout", "100")
    run = [sys.executable, *run_argv(run_id, tmp_path / "runs", *controller, *extra)]
    return bastion_argv(run, {port: socket_path})


def _streams(sup: SupervisorProc) -> dict[str, int]:
    return {s["name"]: s["lines"] for s in sup.results()["streams"]}


def _assert_nothing_left(sup: SupervisorProc) -> None:
    processes = sup.results()["processes"]
    assert processes["leaked"] == 0 and processes["zombies"] == 0


def test_through_one_forwarded_port_every_stream_holds_lines_and_a_failure_shows_its_tail(
    iris: IrisCluster, tmp_path: Path
) -> None:
    with running_socket_forward("127.0.0.1", iris.port) as relay:
        with started(_through_one_port("bst", tmp_path, relay.path, "--tests", "simple"), tmp_path, "bst") as sup:
            assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
            streams = _streams(sup)
            assert sup.results()["outcome"] == "passed", sup.results()["failure_reasons"]
            assert any(name.startswith("stream:controller@") for name in streams), streams
            assert len(streams) >= 2 and all(lines > 0 for lines in streams.values()), streams
            (route,) = sup.find("log_route")
            assert route["route"] == "controller_proxy", route
            _assert_nothing_left(sup)
        failing = tmp_path / "failing.toml"
        failing.write_text(FAILING)
        argv = _through_one_port("bstf", tmp_path, relay.path, "--config", str(failing))
        with started(argv, tmp_path, "bstf") as sup:
            assert sup.wait_exit(RUN_EXIT_S) == 1, sup.output.read_text()[-3000:]
            results = sup.results()
            assert results["failure_reasons"] == ["test_failed"], json.dumps(results)[:3000]
            assert "the-last-words" in (sup.run_dir / "summary.md").read_text()
            _assert_nothing_left(sup)


def test_from_the_bastion_a_tunnel_command_killed_mid_run_is_restored_and_no_line_is_lost(
    iris: IrisCluster, tmp_path: Path
) -> None:
    """No forward is given to the namespace: the run opens its own with `[iris] tunnel_command` (a
    relay to the controller's port, as `ssh -N -L` from a bastion is), which is SIGKILLed while a job
    runs. It is reopened on its port, the run exits 0, and every stream's file is exactly the start
    of its key in Iris's log store."""
    run_id = f"bstt-{uuid.uuid4().hex[:8]}"
    release = tmp_path / "release"
    with running_socket_forward("127.0.0.1", iris.port) as relay:
        forward = [sys.executable, "-m", "tests.helpers.forward", "--listen", "tcp:127.0.0.1:{port}",
                   "--to", f"unix:{relay.path}"]  # fmt: skip
        config = tmp_path / "tunnel.toml"
        config.write_text(f"{ticks(release)}\n[iris]\ntunnel_command = {json.dumps(forward)}\n")
        run = run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--config", str(config), "--timeout", "100")
        with started(bastion_argv([sys.executable, *run]), tmp_path, run_id) as sup:
            dropped = drop_the_tunnel_mid_job(sup, iris, release)
    assert_restored_and_every_line_once(sup, dropped)
    assert [e["route"] for e in sup.find("log_route")] == ["controller_proxy"]
