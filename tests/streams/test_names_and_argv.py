"""Host names, file names and the argv of every transport."""

import shlex
import subprocess
from typing import Any

import pytest

from workers.hosts import HostileNameError, Role, VmHost, validate_name
from workers.transports import (
    LocalTransport,
    SshTransport,
    TransportConfigError,
    render_follow_command,
    wrap_remote,
)

HOSTILE = ["vm;touch pwned", "$(id)", "`id`", "a\nb", "a\n", "../x", "", "a" * 64, "-oProxyCommand=x", "A", "a b"]
SINCE = "2024-05-01T12:00:00.000001000Z"


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_names_are_rejected_with_field_and_repr(value: str) -> None:
    with pytest.raises(HostileNameError) as caught:
        validate_name("vm", value)
    assert caught.value.field == "vm"
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize("value", ["a", "vm-1", "iris-worker", "slice.a_b-0", "a" * 63, "0abc"])
def test_gce_style_names_are_accepted(value: str) -> None:
    assert validate_name("vm", value) == value


def test_non_strings_are_hostile() -> None:
    with pytest.raises(HostileNameError):
        validate_name("vm", 5)


def test_file_names_and_keys() -> None:
    single = VmHost("vm-1", 0, Role.WORKER, "10.0.0.1")
    slice_host = VmHost("slice-a", 2, Role.WORKER, "10.0.0.2", hosts_in_vm=4)
    host0 = VmHost("slice-a", 0, Role.WORKER, "10.0.0.3", hosts_in_vm=4)
    controller = VmHost("iris-controller-x", 0, Role.CONTROLLER, "10.0.0.4")
    assert (str(single.log_path), single.key) == ("logs/vms/vm-1.jsonl", "vm-1")
    assert (str(slice_host.log_path), slice_host.key) == ("logs/vms/slice-a-2.jsonl", "slice-a:2")
    assert str(host0.log_path) == "logs/vms/slice-a-0.jsonl"
    assert (str(controller.log_path), controller.key) == ("logs/controller.jsonl", "controller")


@pytest.mark.parametrize(
    "fields",
    [
        {"vm": "x;y"},
        {"address": "-oProxyCommand=sh"},
        {"address": "a b"},
        {"host": -1},
        {"host": True},
        {"host": 4, "hosts_in_vm": 4},
        {"zone": "$(id)"},
    ],
)
def test_vm_host_validates_every_field(fields: dict[str, object]) -> None:
    base: dict[str, object] = {"vm": "vm-1", "host": 0, "role": "worker", "address": "10.0.0.1", "zone": ""}
    with pytest.raises(HostileNameError):
        VmHost(**(base | fields))  # type: ignore[arg-type]


HOST = VmHost("vm-1", 0, Role.WORKER, "10.1.2.3", zone="us-central2-b")


def test_local_argv_without_and_with_since() -> None:
    transport = LocalTransport("/state", command_prefix=("py", "-m", "local_cluster"))
    head = ["py", "-m", "local_cluster", "logs", "--state-dir", "/state", "--follow", "--timestamps"]
    assert transport.argv(HOST, "iris-worker", None, 100) == [*head, "--exit-on-stdin-close", "vm-1", "iris-worker"]
    with_since = transport.argv(HOST, "iris-worker", SINCE, 100)
    assert with_since[-4:] == ["--since", SINCE, "vm-1", "iris-worker"]


def test_ssh_argv_shape() -> None:
    transport = SshTransport(user="iris", identity_file="/k", port=2222, known_hosts_file="/kh")
    argv = transport.argv(HOST, "iris-worker", SINCE, 123.9)
    assert argv[0] == "ssh"
    options = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-o")
    assert options["BatchMode"] == "yes"
    assert options["StrictHostKeyChecking"] == "yes"
    assert options["UserKnownHostsFile"] == "/kh"
    assert {"ConnectTimeout", "ServerAliveInterval", "ServerAliveCountMax"} <= set(options)
    assert argv[-7:-2] == ["-i", "/k", "-l", "iris", "-T"]
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[-2] == "10.1.2.3"
    remote = argv[-1]
    assert remote.startswith("exec timeout --signal=TERM --kill-after=5 123 sh -c ")
    inner = shlex.split(remote)[-1]
    assert f"sudo docker logs -f --timestamps --since {SINCE} iris-worker 2>&1" in inner
    assert "cat <&3" in inner


@pytest.mark.parametrize("template", ["{container} {vm}", "{container!r}", "{container:>10}", "{0}"])
def test_templates_accept_only_known_fields(template: str) -> None:
    with pytest.raises(TransportConfigError):
        SshTransport(user="iris", remote_template=template)


@pytest.mark.parametrize("container", ["x;touch pwned", "$(id)", "a\nb"])
def test_hostile_container_never_reaches_a_command(container: str) -> None:
    with pytest.raises(HostileNameError):
        render_follow_command("docker logs {container}", container, None)


def test_hostile_since_is_rejected() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        render_follow_command("docker logs {since} {container}", "c", "2024; touch pwned")


@pytest.mark.parametrize(
    "options", [{"port": 0}, {"strict_host_key_checking": "maybe"}, {"extra_options": ("ProxyCommand x",)}]
)
def test_ssh_transport_refuses_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(TransportConfigError):
        SshTransport(user="iris", **options)


def test_wrapped_command_parses_and_runs_locally(tmp_path: object) -> None:
    """The wrapper is valid sh: the follower's output and exit status come through."""
    remote = wrap_remote("printf 'a\\nb\\n'; exit 3", 10)
    # The channel (stdin) stays open until the command is done: its EOF would end the command.
    with subprocess.Popen(["sh", "-c", remote], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        out = proc.stdout.read()
        code = proc.wait(timeout=10)
        proc.stdin.close()
    assert (code, out) == (3, b"a\nb\n")
