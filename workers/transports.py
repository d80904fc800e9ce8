"""How to follow one host's container log: the argv of the follower process.

A transport is pure: given the host, the container and the resume point, it returns an
argv list for `subprocess` (never a shell string on our side). Every value that ends up
in the *remote* shell command (ssh, gcloud) has been validated first (hosts.py) and is
then shell-quoted as well; validation is what we rely on, quoting is the second belt.

The remote command is wrapped so that it cannot outlive the stream (architecture.md,
"Remote cleanup"). Killing a local non-tty ssh does not stop `docker logs -f` on the VM;
it lingers until its next write fails, which for a quiet container is never. So:
- the follower runs in the background of a remote `sh`, and a watcher reads the shell's
  stdin, which is the ssh channel: when the channel closes (we close ssh's stdin, or the
  connection dies and sshd closes the session's pipes), the watcher's `cat` sees EOF and
  kills the follower;
- stdin is duplicated to fd 3 first, because POSIX gives an asynchronous list
  `</dev/null` as stdin when job control is off: a plain `cat &` would read /dev/null
  and kill the follower at once;
- when the follower ends by itself (container missing), the shell kills the watcher
  and exits, so ssh reports the exit instead of waiting on a channel held open by it;
- GNU `timeout` bounds the whole remote tree by the run's deadline (it makes itself a
  process-group leader and signals the group), for a channel that dies silently.
"""

import enum
import json
import math
import shlex
import string
import time
from dataclasses import dataclass, field
from typing import Protocol

from common.controller_target import DEFAULT_MAX_LOG_PAGE_BYTES, ProxyToken
from workers.hosts import Role, VmHost, validate_name
from workers.stream.timestamps import validate_since

# The one default follow command (the config's `streams.remote_command` imports it).
# `2>&1`: `docker logs` writes what the container wrote on stderr to its own stderr, and
# only stdout becomes records; without it every error line of a task would be lost.
DEFAULT_REMOTE_TEMPLATE = "sudo docker logs -f --timestamps {since} {container} 2>&1"
TEMPLATE_FIELDS = frozenset({"since", "container"})
REMOTE_KILL_AFTER_S = 5
STRICT_HOST_KEY_CHECKING = frozenset({"yes", "accept-new", "no"})

_WATCHED = (
    "exec 3<&0; {command} </dev/null 3<&- & pid=$!; "
    "( cat <&3 >/dev/null 2>&1; kill -TERM $pid ) >/dev/null 2>&1 & watcher=$!; "
    "exec 3<&-; wait $pid; rc=$?; kill -TERM $watcher 2>/dev/null; exit $rc"
)


class TransportKind(enum.StrEnum):
    LOCAL = "local"
    SSH = "ssh"
    IRIS_LOG = "iris_log"


class TransportConfigError(ValueError):
    pass


class Transport(Protocol):
    @property
    def kind(self) -> TransportKind: ...

    @property
    def inherited_secrets(self) -> frozenset[str]:
        """The secret environment variables its follower reads itself (common.env.without_secrets)."""
        ...

    def argv(self, host: VmHost, container: str, since: str | None, seconds_left: float) -> list[str]: ...


def check_template(template: str) -> str:
    """Accept only `{since}` and `{container}`, with no conversions or format specs."""
    for _text, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS or spec or conversion:
            raise TransportConfigError(f"remote template field {{{name}}} is not allowed")
    return template


def render_follow_command(template: str, container: str, since: str | None) -> str:
    container = validate_name("container", container)
    since_arg = "" if since is None else f"--since {shlex.quote(validate_since(since))}"
    return check_template(template).format(container=shlex.quote(container), since=since_arg)


def wrap_remote(command: str, seconds_left: float) -> str:
    """The remote shell command: `command`, ended by channel EOF and by the deadline."""
    seconds = max(1, int(seconds_left))
    inner = _WATCHED.format(command=command)
    return f"exec timeout --signal=TERM --kill-after={REMOTE_KILL_AFTER_S} {seconds} sh -c {shlex.quote(inner)}"


# A stream's follower written in Python is forked by the stream child (`ProcessGroups.fork`:
# ~2 MiB of its own beside the child's pages, against a fresh interpreter's ~14 MiB), with
# the argv a transport builds (less `command_prefix`) as its arguments, and named so.
FOLLOWER_NAME = "iris:follow"
LOCAL_FOLLOWER_ENTRYPOINT = "local_cluster.logs_command:main"
FOLLOWER_ENTRYPOINT = "workers.logservice_follow:main"


@dataclass(frozen=True)
class LocalTransport:
    """The embedded cluster's `logs` command; it exits when its stdin closes. Forked
    (LOCAL_FOLLOWER_ENTRYPOINT) unless `command_prefix` names a program to exec instead."""

    state_dir: str
    command_prefix: tuple[str, ...] = ()
    kind: TransportKind = field(default=TransportKind.LOCAL, init=False)

    @property
    def inherited_secrets(self) -> frozenset[str]:
        return frozenset()

    @property
    def forked(self) -> tuple[str, str] | None:
        """(entrypoint, process name) to fork with the argv, or None to exec the argv."""
        return None if self.command_prefix else (LOCAL_FOLLOWER_ENTRYPOINT, FOLLOWER_NAME)

    def argv(self, host: VmHost, container: str, since: str | None, seconds_left: float) -> list[str]:
        # Forked, the entrypoint is the `logs` command itself (no cluster config to import).
        head = [*self.command_prefix, "logs"] if self.command_prefix else []
        argv = [*head, "--state-dir", self.state_dir]
        argv += ["--follow", "--timestamps", "--exit-on-stdin-close"]
        if since is not None:
            argv += ["--since", validate_since(since)]
        # VM and container are validated names, so neither can be mistaken for an option.
        return [*argv, host.vm, validate_name("container", container)]


@dataclass(frozen=True)
class SshTransport:
    user: str
    identity_file: str | None = None
    port: int = 22
    known_hosts_file: str | None = None
    strict_host_key_checking: str = "yes"
    config_file: str | None = None
    connect_timeout_s: int = 10
    server_alive_interval_s: int = 15
    server_alive_count_max: int = 3
    remote_template: str = DEFAULT_REMOTE_TEMPLATE
    ssh_binary: str = "ssh"
    # One multiplexed connection per host (GCP): its socket in this private directory,
    # shared by the host's streams; the master outlives its last client this long.
    control_dir: str | None = None
    control_persist_s: int = 60
    # "Key=Value" options a resolver vouched for (workers.gcp.ssh_target.PASSED_OPTIONS).
    extra_options: tuple[str, ...] = ()
    kind: TransportKind = field(default=TransportKind.SSH, init=False)

    @property
    def inherited_secrets(self) -> frozenset[str]:
        return frozenset()

    def __post_init__(self) -> None:
        validate_name("user", self.user)
        if self.strict_host_key_checking not in STRICT_HOST_KEY_CHECKING:
            raise TransportConfigError(f"strict_host_key_checking: {self.strict_host_key_checking!r}")
        if not 0 < self.port < 65536:
            raise TransportConfigError(f"port: {self.port!r}")
        for option in self.extra_options:
            if not isinstance(option, str) or "=" not in option or any(c.isspace() for c in option):
                raise TransportConfigError(f"extra_options: {option!r} is not KEY=VALUE")
        check_template(self.remote_template)

    def options(self) -> list[str]:
        opts = {
            "BatchMode": "yes",
            "ConnectTimeout": str(self.connect_timeout_s),
            "ServerAliveInterval": str(self.server_alive_interval_s),
            "ServerAliveCountMax": str(self.server_alive_count_max),
            "StrictHostKeyChecking": self.strict_host_key_checking,
            "LogLevel": "ERROR",
        }
        if self.known_hosts_file is not None:
            opts["UserKnownHostsFile"] = self.known_hosts_file
        if self.identity_file is not None:
            opts["IdentitiesOnly"] = "yes"
        if self.control_dir is not None:
            # %C: a hash of host, port and user, short enough for a socket path.
            opts |= {"ControlMaster": "auto", "ControlPath": f"{self.control_dir}/%C",
                     "ControlPersist": str(self.control_persist_s)}  # fmt: skip
        opts |= dict(option.split("=", 1) for option in self.extra_options)
        argv = [] if self.config_file is None else ["-F", self.config_file]
        for key, value in opts.items():
            argv += ["-o", f"{key}={value}"]
        return argv

    def login_argv(self) -> list[str]:
        """Everything before the host: ssh, its options, port, key and user, no tty."""
        argv = [self.ssh_binary, *self.options(), "-p", str(self.port)]
        if self.identity_file is not None:
            argv += ["-i", self.identity_file]
        return [*argv, "-l", self.user, "-T"]

    def argv(self, host: VmHost, container: str, since: str | None, seconds_left: float) -> list[str]:
        remote = wrap_remote(render_follow_command(self.remote_template, container, since), seconds_left)
        return [*self.login_argv(), host.address, remote]


def proxy_token_flags(source: ProxyToken) -> list[str]:
    """The follower's flags for where the proxy token is: the file's path or the command (JSON), never the token."""
    if source.file:
        flags = [f"--proxy-token-file={source.file}"]
    elif source.command:
        flags = [f"--proxy-token-command={json.dumps(list(source.command))}"]
    else:
        return []
    return [*flags, f"--proxy-token-ttl={float(source.ttl_s)!r}"]


@dataclass(frozen=True)
class IrisLogTransport:
    """A real Iris keeps worker and controller logs in its log service, not in docker.

    The follower is `workers.logservice_follow`, which prints a log-service key the way
    `docker logs -f --timestamps --since` does. It is forked (FOLLOWER_ENTRYPOINT) unless
    `command_prefix` names a program to exec instead (a test wraps the follower so). The key
    is `/system/controller` for the controller and `/system/worker/<vm>` for a worker, `vm`
    being the Iris worker id (a validated name). The container name is ignored: Iris keys
    logs by worker, not by container. `--deadline-unix` is the run's deadline on the wall clock (the follower is
    another process), read when the argv is built. The follower prints cursor markers,
    and `cursor` (the store row of the last line on disk, stamped `since`) resumes it
    exactly after that row (see the follower's docstring).
    """

    controller: str
    token_file: str | None = None
    token_env: str | None = None  # the variable's name: the follower inherits the environment
    proxy_token: ProxyToken = field(default_factory=ProxyToken)  # where the follower finds its proxy token
    poll_interval_s: float = 0.5
    max_page_bytes: int = DEFAULT_MAX_LOG_PAGE_BYTES  # a longer FetchLogs page is refused
    command_prefix: tuple[str, ...] = ()  # empty: FOLLOWER_ENTRYPOINT, forked
    # The run's log reader (workers.log_reader), by its abstract socket name: the stream subscribes
    # to it (workers.stream.subscription) instead of starting a follower. "": a follower of its own.
    reader: str = ""
    kind: TransportKind = field(default=TransportKind.IRIS_LOG, init=False)

    @property
    def forked(self) -> tuple[str, str] | None:
        """(entrypoint, process name) to fork with the argv, or None to exec the argv."""
        return None if self.command_prefix else (FOLLOWER_ENTRYPOINT, FOLLOWER_NAME)

    @property
    def inherited_secrets(self) -> frozenset[str]:
        return frozenset({self.token_env}) if self.token_env else frozenset()

    def __post_init__(self) -> None:
        url = self.controller
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
            raise TransportConfigError(f"controller must be an http(s) URL without whitespace: {url!r}")
        poll = self.poll_interval_s
        if isinstance(poll, bool) or not isinstance(poll, int | float) or not 0 < poll < math.inf:
            raise TransportConfigError(f"poll_interval_s must be a positive number: {poll!r}")
        size = self.max_page_bytes
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise TransportConfigError(f"max_page_bytes must be a positive integer: {size!r}")
        if self.token_file is not None and not isinstance(self.token_file, str):
            raise TransportConfigError(f"token_file: {self.token_file!r}")
        if self.token_env is not None and not (isinstance(self.token_env, str) and self.token_env.isidentifier()):
            raise TransportConfigError(f"token_env: {self.token_env!r}")

    @staticmethod
    def key(host: VmHost) -> str:
        """The log-service key of `host`'s log."""
        return (
            "/system/controller" if host.role == Role.CONTROLLER else f"/system/worker/{validate_name('vm', host.vm)}"
        )

    def argv(
        self, host: VmHost, container: str, since: str | None, seconds_left: float, cursor: int | None = None
    ) -> list[str]:
        argv = [*self.command_prefix, "--controller", self.controller, "--key", self.key(host)]
        argv += ["--poll-interval", repr(float(self.poll_interval_s)), "--exit-on-stdin-close", "--cursor-markers"]
        if self.max_page_bytes != DEFAULT_MAX_LOG_PAGE_BYTES:  # the follower's own default otherwise
            argv.append(f"--max-page-bytes={int(self.max_page_bytes)}")
        if self.token_file is not None:
            argv.append(f"--token-file={self.token_file}")  # one word: a path starting with "-" stays a value
        if self.token_env is not None:
            argv.append(f"--token-env={self.token_env}")  # the name only: the token never enters an argv
        argv += proxy_token_flags(self.proxy_token)
        if since is not None:
            argv += ["--since", validate_since(since)]
            if cursor is not None:
                argv.append(f"--cursor={int(cursor)}")
        if math.isfinite(seconds_left):
            argv += ["--deadline-unix", f"{time.time() + max(0.0, seconds_left):.3f}"]
        return argv
