"""The run's configuration: a TOML file, then command-line flags on top, validated once.

Every error names the field and says what would be accepted, e.g.
`streams.max_line_bytes: must be an integer >= 1024, got 12`. Nothing is read from the
config after validation: the rest of the program gets frozen dataclasses.
"""

import enum
import getpass
import json
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from common import inputs
from common.controller_target import (
    DEFAULT_MAX_LOG_PAGE_BYTES,
    DEFAULT_MAX_REPLY_BYTES,
    PROXY_TOKEN_TTL_S,
    PriorityBand,
    ProxyToken,
)
from common.errors import ConfigError
from common.jsonshape import JsonObject, to_json, to_json_object
from common.toml_table import Check, Table, count, duration, read_toml, text, texts, truth
from supervisor import settings
from supervisor.backends.registry import DEFAULT_KIND, intervals_of
from supervisor.backends.registry import ClusterKind as ClusterKind  # the run config's kind; imported from here too
from supervisor.settings import Setting, assigned, read
from workers.child_args import (
    FLEET_CHECKS,
    MANY_TASKS,
    TUNNEL_FIELDS,
    UNAVAILABLE_REPORT_S,
    CustomTest,
    FleetSettings,
    TunnelCommand,
)
from workers.controller.model import Constraint, JobRequest
from workers.gcp.settings import COMMAND_FIELDS, CONTROLLER_PORT, GcpSettings
from workers.hosts import MAX_HOSTS_PER_VM, NAME_PATTERN, HostileNameError, split_address
from workers.transports import (
    DEFAULT_REMOTE_TEMPLATE,
    SshTransport,
    TransportConfigError,
    check_template,
)

# Patterns are used with fullmatch: `^...$` would let a trailing newline through.
NAME = NAME_PATTERN
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}", re.ASCII)
PREFIX = re.compile(r"[a-z][a-z0-9-]{0,29}", re.ASCII)
# The same names as workers/smoke_tests (the supervisor does not import the workers' suite).
STANDARD_TESTS = (
    "simple", "concurrent", "coscheduled",
    "accelerator_probe", "region_constrained", "nested_constraints", "non_preemptible",
    "many_tasks", "exec_in_container", "profile_task", "log_levels", "named_ports", "endpoint_registration",
    "cancel_releases_resources", "pending_reason", "workdir_offload",
)  # fmt: skip
PROBES = ("env", "jax")
# A `[sets]` name: what `--tests` and `run.tests` may name instead of its members.
SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", re.ASCII)
# A reply cap: at least an error page, at most what a child may hold (parsed, about 7 times that).
MIN_REPLY_BYTES = 64 * 1024
MAX_REPLY_BYTES = 1024 * 1024 * 1024
E = TypeVar("E", bound=enum.StrEnum)
ACCELERATOR = re.compile(r"(cpu|gpu|tpu)(:[A-Za-z0-9._-]{1,40})?", re.ASCII)


@dataclass(frozen=True)
class SuiteSettings:
    """What the tests run on; every value empty/0 = discovered from the cluster."""

    accelerator: str = ""  # `tpu` or `tpu:v5litepod-16`: the group the standard tests use
    hosts_per_slice: int = 0
    region: str = ""  # the region region_constrained and nested_constraints pin
    region_attribute: str = ""  # the worker attribute that names a region; "" = `region`
    probe: str = "env"  # accelerator_probe: env (what the cluster gives) or jax (real hardware)
    priority_band: PriorityBand = PriorityBand.INTERACTIVE  # the Iris band every job is launched in
    many_tasks: int = MANY_TASKS  # the replicas of the many_tasks job


@dataclass(frozen=True)
class IrisSettings:
    bin: str = "iris"  # the `iris` executable (from marin-iris), for --cluster iris-local
    config: str = ""  # the local cluster's YAML; default: one the run writes
    token_file: str = ""  # a bearer token for an Iris with auth; read by the children, never logged
    token_env: str = ""  # or the name of the environment variable holding it (the value is never logged)
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES  # a longer reply is refused: reply_too_large
    max_log_page_bytes: int = DEFAULT_MAX_LOG_PAGE_BYTES  # the same for one FetchLogs page
    # A bearer token over plain http to a host other than this one is refused unless this is set.
    allow_insecure_http: bool = False
    # The Proxy-Authorization bearer for an Iris behind IAP (common.controller_target.ProxyToken):
    # a file, or an argv whose stdout is the token; each process fetches it, never logged.
    proxy_token_file: str = ""
    proxy_token_command: tuple[str, ...] = ()
    proxy_token_ttl_s: float = PROXY_TOKEN_TTL_S  # how long an opaque (non-JWT) token is used
    # --cluster iris without --controller: the argv of a forward to the controller (ssh -L, kubectl
    # port-forward) with {port} (the local port the run picks) and {remote_port} (controller_port).
    tunnel_command: tuple[str, ...] = ()
    controller_port: int = CONTROLLER_PORT
    # controller_vitals: the tree hash or base commit the controller must report (GetProcessStatus).
    expect_version: str = ""

    @property
    def proxy_token(self) -> ProxyToken:
        return ProxyToken(self.proxy_token_file, self.proxy_token_command, self.proxy_token_ttl_s)


@dataclass(frozen=True)
class SshHost:
    vm: str
    address: str
    host: int = 0
    role: str = "worker"


@dataclass(frozen=True)
class SshSettings:
    # The streams' transport itself: its defaults are the only ones (user: whoever runs us).
    transport: SshTransport = field(default_factory=lambda: SshTransport(user=getpass.getuser()))
    hosts: tuple[SshHost, ...] = ()


@dataclass(frozen=True)
class StreamSettings:
    max_line_bytes: int = 65536
    stale_after_s: float = 300.0
    remote_command: str = DEFAULT_REMOTE_TEMPLATE  # declared once, with the transports that run it
    gone_grace_s: float = 30.0
    # One child (~3 MiB) and a few fds per stream: more hosts than this get no stream
    # (`hosts_over_limit`) instead of exhausting the bastion.
    max_streams: int = 256
    # Bytes one stream may write to its file, and the whole run; each stream gets at most
    # max_run_bytes / max_streams, so the run's total stays bounded (a flood wrote 778 MB in 4 s).
    max_stream_bytes: int = 512 << 20
    max_run_bytes: int = 32 << 30

    @property
    def bytes_per_stream(self) -> int:
        return min(self.max_stream_bytes, self.max_run_bytes // self.max_streams)


class Policy(enum.StrEnum):
    """What a verdict rule does when it bites: fail the run, or only log a warning."""

    FAIL = "fail"
    WARN = "warn"


@dataclass(frozen=True)
class VerdictSettings:
    # A stream up for the whole observation window that delivered no line (stream_no_data).
    silent_streams: Policy = Policy.FAIL
    # Hosts left without a stream by streams.max_streams (hosts_over_limit).
    hosts_over_limit: Policy = Policy.FAIL
    # Hosts discovery refused: hostile names, duplicate worker ids (hosts_rejected).
    hosts_rejected: Policy = Policy.FAIL
    # Consecutive failed host listings that fail the run (discovery_failed).
    discovery_max_failures: int = 6
    # A controller that no child could reach for this long ends the run (controller_unavailable).
    controller_outage_s: float = UNAVAILABLE_REPORT_S


@dataclass(frozen=True)
class RunConfig:
    cluster: ClusterKind = DEFAULT_KIND
    controller: str = ""
    local_cluster_config: str = ""
    keep: bool = False
    prefix: str = ""
    log_dir: str = "iris-smoke-runs"
    timeout_s: float = 1800.0
    boot_timeout_s: float = 120.0
    job_timeout_s: float = 300.0
    stop_grace_s: float = 2.0
    # None: the cluster kind's (its backend's): 1 s on a local cluster (listing it is a local RPC),
    # 10 s on a real cloud.
    discovery_interval_s: float | None = None
    # None: the cluster kind's: 0.25 s on a local cluster (a pending reason lasts as long as a local
    # boot), 1 s elsewhere.
    monitor_interval_s: float | None = None
    # The selection: standard tests, fleet checks, [sets] and [[tests]] names (a set stands for its
    # members); [[tests]] all run when it names none of them.
    tests: tuple[str, ...] = (*FLEET_CHECKS, *STANDARD_TESTS)
    sets: tuple[tuple[str, tuple[str, ...]], ...] = ()  # [sets]: name -> members
    fleet: FleetSettings = field(default_factory=FleetSettings)
    # Observe only: no job is submitted; discovery, streams and monitors watch for `observe_s`
    # and the verdict rests on what they saw (README "Observe-only runs").
    observe: bool = False
    observe_s: float = 30.0
    custom_tests: tuple[CustomTest, ...] = ()
    suite: SuiteSettings = field(default_factory=SuiteSettings)
    streams: StreamSettings = field(default_factory=StreamSettings)
    ssh: SshSettings = field(default_factory=SshSettings)
    iris: IrisSettings = field(default_factory=IrisSettings)
    gcp: GcpSettings = field(default_factory=GcpSettings)
    verdict: VerdictSettings = field(default_factory=VerdictSettings)

    @property
    def discovery_every_s(self) -> float:
        if self.discovery_interval_s is not None:
            return self.discovery_interval_s
        return intervals_of(self.cluster).discovery_interval_s

    @property
    def monitor_every_s(self) -> float:
        if self.monitor_interval_s is not None:
            return self.monitor_interval_s
        return intervals_of(self.cluster).monitor_interval_s

    @property
    def attached(self) -> bool:
        return bool(self.controller)

    @property
    def tunnel(self) -> TunnelCommand | None:
        """How a `--cluster iris` run reaches its controller when it opens the way itself."""
        if not self.iris.tunnel_command:
            return None
        return TunnelCommand(self.iris.tunnel_command, self.iris.controller_port)

    @property
    def outlives_run(self) -> bool:
        """A cluster the run neither started nor stops: attached, through a tunnel, or kept."""
        return self.attached or self.tunnel is not None or self.keep

    def test_names(self) -> list[str]:
        return [*self.fleet_checks(), *self.standard_tests(), *(t.name for t in self.selected_custom_tests())]

    def fleet_checks(self) -> list[str]:
        """The fleet checks selected, in the order they run; an observe run makes them too (they launch nothing)."""
        return [n for n in FLEET_CHECKS if n in self.tests]

    def only_fleet_checks(self) -> bool:
        """The selection names fleet checks only: nothing an observe run cannot do."""
        return all(n in FLEET_CHECKS for n in self.tests)

    def standard_tests(self) -> list[str]:
        """The standard tests selected; none in an observe run."""
        return [] if self.observe else [n for n in self.tests if n in STANDARD_TESTS]

    def selected_custom_tests(self) -> list[CustomTest]:
        """The [[tests]] the selection names; all of them when it names none (`tests = []` = only these);
        none in an observe run."""
        if self.observe:
            return []
        named = [t for t in self.custom_tests if t.name in self.tests]
        return named if named else list(self.custom_tests)

    def unknown_tests(self) -> list[str]:
        known = {*STANDARD_TESTS, *FLEET_CHECKS, *(t.name for t in self.custom_tests)}
        return [n for n in self.tests if n not in known]

    def expanded(self) -> "RunConfig":
        """The selection with each `[sets]` name replaced by its members (order kept, each name once)."""
        sets = dict(self.sets)
        names = [m for n in self.tests for m in sets.get(n, (n,))]
        return replace(self, tests=tuple(dict.fromkeys(names)))


def unknown_test_message(name: str) -> str:
    """Why a selected name is refused; the caller names the field (`run.tests`, `--tests`, `sets.<name>`)."""
    return (f"{name!r} is neither a standard test ({', '.join(STANDARD_TESTS)}), a fleet check "
            f"({', '.join(FLEET_CHECKS)}), a [sets] name nor a [[tests]] name")  # fmt: skip


def _test_spec(reader: Table) -> CustomTest:
    argv = reader.strings("argv", ())
    if not argv:
        raise ConfigError(f"{reader.path}.argv: must be a non-empty list of strings (the job's argv)")
    constraints = []
    for c in reader.tables("constraints"):
        constraints.append(
            Constraint(c.string("key", ""), c.string("op", "eq", choices=("eq", "ne", "exists")), c.string("value", ""))
        )
        c.done()
    job = JobRequest(
        name=reader.string("name", "", NAME) or _missing(reader, "name"),
        argv=argv,
        device=reader.string("device", "cpu", choices=("cpu", "gpu", "tpu")),
        variant=reader.string("variant", ""),
        count=reader.integer("count", 0, 0),
        replicas=reader.integer("replicas", 1, 1),
        group_by=reader.string("group_by", ""),
        constraints=tuple(constraints),
    )
    expect = reader.string("expect", "succeeded", choices=("succeeded", "failed", "unschedulable", "killed"))
    spec = CustomTest(job, expect)
    reader.done()
    return spec


def _missing(reader: Table, key: str) -> str:
    raise ConfigError(f"{reader.path}.{key}: required")


def _ssh_address(h: Table) -> str:
    """A host for ssh: a hostname, an IPv4 address, or an IPv6 literal bare (`::1`) or in
    brackets (`[::1]`, kept bare). `host:port` is refused: ssh would take it whole as a host
    name, and one `[ssh] port` serves every host."""
    address = h.string("address", "") or _missing(h, "address")
    try:
        host, port = split_address("address", address)
    except HostileNameError:
        raise ConfigError(
            f"{h.path}.address: must be a hostname or IP address (no leading '-', no spaces), got {address!r}"
        ) from None
    if port is not None:
        raise ConfigError(
            f"{h.path}.address: {address!r} has a port; give the host alone ({host!r}) and set [ssh] port = {port}"
            " (one port for every host)"
        )
    return host


def _ssh_host(h: Table) -> SshHost:
    address = _ssh_address(h)
    host = SshHost(
        vm=h.string("vm", "", NAME) or _missing(h, "vm"),
        address=address,
        host=h.integer("host", 0, 0, MAX_HOSTS_PER_VM - 1),
        role=h.string("role", "worker", choices=("worker", "controller")),
    )
    h.done()
    return host


def _ssh_hosts(reader: Table) -> tuple[SshHost, ...]:
    hosts = tuple(_ssh_host(h) for h in reader.tables("hosts"))
    seen: set[tuple[str, int]] = set()
    for i, h in enumerate(hosts):
        if (h.vm, h.host) in seen:
            raise ConfigError(f"ssh.hosts[{i}].vm: {h.vm!r} host {h.host} is listed twice; give each VM host once")
        seen.add((h.vm, h.host))
    return hosts


def _command_template(fields: frozenset[str], required: str = "") -> Check:
    """An argv template (a list, never a shell line) using only `fields`, and `required` if given."""
    allowed = ", ".join(f"{{{f}}}" for f in sorted(fields))

    def check(value: object) -> tuple[str, ...]:
        if isinstance(value, str):
            raise ValueError(f"must be a list of strings (an argv, never a shell line), e.g. "
                             f"{json.dumps(value.split())}; only {allowed} are filled in")  # fmt: skip
        template = texts()(value)
        used: set[str] = set()
        for part in template:
            try:
                parsed = list(string.Formatter().parse(part))
            except ValueError as exc:
                raise ValueError(f"{exc} in {part!r}; use {{{{ }}}} for a literal brace") from None
            for _text, name, spec, conversion in parsed:
                if name is not None and (name not in fields or spec or conversion):
                    raise ValueError(f"{{{name}}} in {part!r}; only {allowed} are filled in")
                used.add(name or "")
        if template and required and required not in used:
            raise ValueError(f"must contain {{{required}}} in one of its words; only {allowed} are filled in")
        return template

    return check


def _remote_command(value: object) -> str:
    """The follow command: only `{since}` and `{container}`, and `{container}` required."""
    template = text()(value)
    fix = "use only {since} and {container}, and {{ }} for a literal brace"
    try:
        fields = {name for _text, name, _spec, _conv in string.Formatter().parse(check_template(template))}
    except (TransportConfigError, ValueError) as exc:
        raise ValueError(f"{exc}; {fix}") from None
    if "container" not in fields:
        raise ValueError(f"must contain {{container}}; {fix}")
    return template


def _credential_path(value: object) -> str:
    """A file path; a leading `$CREDENTIALS_DIRECTORY/` is the unit's credentials directory."""
    return inputs.credential_path(text()(value))


def _ssh_user(value: object) -> str:
    user = text()(value)
    return inputs.ssh_user(user) if user else getpass.getuser()


def _choice(kind: type[E]) -> Callable[[object], E]:
    return lambda value: kind(text(choices=tuple(kind))(value))


def _sets(value: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`[sets]`: each key a set's name, each value the list of test names it stands for."""
    if not isinstance(value, dict):
        raise ValueError(f"must be a table of name = [test names], got {value!r}")
    found = []
    for name, members in value.items():
        if not SET_NAME.fullmatch(name):
            raise ValueError(f"the set name {name!r} must match {SET_NAME.pattern}")
        try:
            listed = texts()(members)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        if not listed:
            raise ValueError(f"{name}: an empty set selects nothing; list its tests")
        found.append((name, listed))
    return tuple(found)


def _tests_flag(value: str) -> list[str]:
    return [n for n in value.split(",") if n]


_PORT = count(1, 65535)
_REPLY_BYTES = count(MIN_REPLY_BYTES, MAX_REPLY_BYTES)
_HOST_KEYS = text(choices=("yes", "no", "accept-new"))
SECTIONS = ("run", "cluster", "streams", "verdict", "ssh", "iris", "gcp", "suite", "fleet")
# Every setting of the run's config file and its flags, declared once (supervisor/settings.py).
# [[tests]] and [ssh] hosts are arrays of tables, read by _test_spec and _ssh_host.
# fmt: off
RUN_SETTINGS: tuple[Setting, ...] = (
    Setting("run.timeout_s", "timeout_s", duration(), "the global deadline (s)", "--timeout", metavar="T"),
    Setting("run.boot_timeout_s", "boot_timeout_s", duration(), "the cluster's start (s)", "--boot-timeout",
            metavar="T"),
    Setting("run.job_timeout_s", "job_timeout_s", duration(), "each test job (s)", "--job-timeout", metavar="T"),
    Setting("run.stop_grace_s", "stop_grace_s", duration(), "SIGTERM to SIGKILL, for each child (s)", "--stop-grace",
            metavar="T"),
    Setting("run.discovery_interval_s", "discovery_interval_s", duration(), "between host listings (s)",
            "--discovery-interval", metavar="T", shown_default="1 local, 10 else"),
    Setting("run.monitor_interval_s", "monitor_interval_s", duration(),
            "between the monitors' polls (s)", shown_default="0.25 local, 1 else"),
    Setting("run.prefix", "prefix", text(PREFIX), "the label prefix", "--prefix", metavar="P",
            shown_default="unique per run, smoke-<hex>"),
    Setting("run.log_dir", "log_dir", text(), "the parent of the run directory", "--log-dir", metavar="DIR"),
    Setting("run.tests", "tests", texts(), "the tests to run: standard tests, fleet checks, [sets] and "
            "[[tests]] names", "--tests", split=_tests_flag, metavar="NAMES", shown_default="every fleet check and "
            "standard test"),
    Setting("sets", "sets", _sets, "named test sets, e.g. vitals = [\"controller_vitals\", \"slices_complete\"]; "
            "a set's name selects its members", shown_default="none"),
    Setting("run.observe", "observe", truth, "observe only: submit no job; the verdict rests on what discovery, "
            "streams and monitors saw", "--observe", switch=True),
    Setting("run.observe_s", "observe_s", duration(), "how long an observe run watches (s), within the deadline",
            "--observe-s", metavar="T"),
    Setting("cluster.kind", "cluster", _choice(ClusterKind), "the cluster: " + " or ".join(ClusterKind), "--cluster",
            metavar="KIND"),
    Setting("cluster.controller", "controller", text(), "attach to this controller (a real Iris: http://HOST:PORT)",
            "--controller", metavar="ADDR"),
    Setting("cluster.local_config", "local_cluster_config", text(),
            "the embedded local cluster's scale groups (docs/local-cluster.md)"),
    Setting("cluster.keep", "keep", truth, "leave the cluster the run started running", "--keep", switch=True),
    Setting("streams.max_line_bytes", "streams.max_line_bytes", count(1024, inputs.MAX_LINE_BYTES),
            "a longer log line is cut and flagged truncated"),
    Setting("streams.stale_after_s", "streams.stale_after_s", duration(), "a stream silent this long is stale"),
    Setting("streams.remote_command", "streams.remote_command", _remote_command,
            "the follow command on a host: {since} and {container} filled in"),
    Setting("streams.gone_grace_s", "streams.gone_grace_s", duration(allow_zero=True),
            "a host gone from discovery this long has its stream stopped"),
    Setting("streams.max_streams", "streams.max_streams", count(1), "hosts beyond it get no stream"),
    Setting("streams.max_stream_bytes", "streams.max_stream_bytes", count(4096, inputs.MAX_BYTES),
            "a stream's file stops here (stream_capped)"),
    Setting("streams.max_run_bytes", "streams.max_run_bytes", count(4096, inputs.MAX_BYTES),
            "all streams' files together; each gets at most max_run_bytes / max_streams"),
    Setting("verdict.silent_streams", "verdict.silent_streams", _choice(Policy),
            "fail or warn: a stream up all along that saw no line"),
    Setting("verdict.hosts_over_limit", "verdict.hosts_over_limit", _choice(Policy),
            "fail or warn: hosts left without a stream by max_streams"),
    Setting("verdict.hosts_rejected", "verdict.hosts_rejected", _choice(Policy),
            "fail or warn: hosts discovery refused (hostile names, duplicate worker ids)"),
    Setting("verdict.discovery_max_failures", "verdict.discovery_max_failures", count(1),
            "failed host listings in a row that fail the run"),
    Setting("verdict.controller_outage_s", "verdict.controller_outage_s", duration(),
            "the controller unreachable this long ends the run: controller_unavailable (s)"),
    Setting("ssh.user", "ssh.transport.user", _ssh_user, "the login on every host", shown_default="the user running"),
    Setting("ssh.port", "ssh.transport.port", _PORT, "one port for every host"),
    Setting("ssh.identity_file", "ssh.transport.identity_file", lambda v: _credential_path(v) or None,
            "the key; a leading $CREDENTIALS_DIRECTORY/ is a systemd unit's credentials"),
    Setting("ssh.strict_host_key_checking", "ssh.transport.strict_host_key_checking", _HOST_KEYS,
            "yes, no or accept-new"),
    Setting("ssh.known_hosts_file", "ssh.transport.known_hosts_file", lambda v: text()(v) or None,
            "ssh's UserKnownHostsFile"),
    Setting("ssh.connect_timeout_s", "ssh.transport.connect_timeout_s", lambda v: max(1, round(duration()(v))),
            "ssh's ConnectTimeout (s)"),
    Setting("iris.bin", "iris.bin", text(), "the `iris` executable, for iris-local", "--iris-bin", metavar="PATH"),
    Setting("iris.config", "iris.config", text(), "the iris-local cluster's YAML", "--iris-config",
            metavar="YAML", shown_default="built in"),
    Setting("iris.token_file", "iris.token_file", _credential_path,
            "a bearer token for an Iris with auth; read by the children, never logged"),
    Setting("iris.token_env", "iris.token_env", text(ENV_NAME), "or the environment variable that holds it"),
    Setting("iris.max_reply_bytes", "iris.max_reply_bytes", _REPLY_BYTES,
            "a longer controller reply is refused: reply_too_large"),
    Setting("iris.max_log_page_bytes", "iris.max_log_page_bytes", _REPLY_BYTES, "the same for one FetchLogs page"),
    Setting("iris.allow_insecure_http", "iris.allow_insecure_http", truth,
            "allow a bearer token over plain http to a host that is not loopback"),
    Setting("iris.proxy_token_file", "iris.proxy_token_file", _credential_path,
            "an Iris behind IAP: the Proxy-Authorization token, re-read as it rotates"),
    Setting("iris.proxy_token_command", "iris.proxy_token_command", texts(), "or the argv that prints it"),
    Setting("iris.proxy_token_ttl_s", "iris.proxy_token_ttl_s", duration(),
            "how long an opaque (non-JWT) proxy token is used (s)"),
    Setting("iris.tunnel_command", "iris.tunnel_command", _command_template(TUNNEL_FIELDS, required="port"),
            "--cluster iris without --controller: a forward to the controller, as argv; {port} = the local "
            "port the run picks, {remote_port} = controller_port"),
    Setting("iris.controller_port", "iris.controller_port", _PORT, "the controller's port at tunnel_command's far end"),
    Setting("iris.expect_version", "iris.expect_version", text(),
            "controller_vitals: the tree hash or base commit the controller must report", shown_default="any"),
    Setting("fleet.query_warn_s", "fleet.query_warn_s", duration(), "controller_vitals: SELECT 1 slower warns (s)"),
    Setting("fleet.query_fail_s", "fleet.query_fail_s", duration(), "controller_vitals: SELECT 1 slower fails (s)"),
    Setting("fleet.max_rss_bytes", "fleet.max_rss_bytes", count(0), "controller_vitals: the controller's RSS; 0 = any"),
    Setting("fleet.max_threads", "fleet.max_threads", count(0), "controller_vitals: its threads; 0 = any"),
    Setting("fleet.max_fds", "fleet.max_fds", count(0), "controller_vitals: its open fds; 0 = any"),
    Setting("fleet.settle_s", "fleet.settle_s", duration(allow_zero=True),
            "slices_complete and worker_attributes: a slice short of a worker, or no (multi-host) slice or "
            "worker listed yet, is listed again this long first (s)"),
    Setting("gcp.project", "gcp.project", text(NAME), "the project"),
    Setting("gcp.zones", "gcp.zones", texts(NAME), "the zones listed"),
    Setting("gcp.label_prefix", "gcp.label_prefix", text(PREFIX), "the clusters' label prefix",
            shown_default="the run's prefix"),
    Setting("gcp.controller_name", "gcp.controller_name", text(NAME), "the controller VM",
            shown_default="iris-controller-<prefix>"),
    Setting("gcp.controller_port", "gcp.controller_port", _PORT, "the controller's port on its VM"),
    Setting("gcp.controller_container", "gcp.controller_container", text(NAME), "the controller's container"),
    Setting("gcp.worker_container", "gcp.worker_container", text(NAME), "the workers' container"),
    Setting("gcp.gcloud", "gcp.gcloud", text(), "the gcloud executable"),
    Setting("gcp.call_timeout_s", "gcp.call_timeout_s", duration(), "one gcloud call (s)"),
    Setting("gcp.delete_timeout_s", "gcp.delete_timeout_s", duration(), "one deletion (s)"),
    Setting("gcp.strict_host_key_checking", "gcp.strict_host_key_checking", _HOST_KEYS, "yes, no or accept-new"),
    Setting("gcp.connect_timeout_s", "gcp.connect_timeout_s", count(1, 3600), "ssh's ConnectTimeout (s)"),
    Setting("gcp.start_command", "gcp.start_command", _command_template(COMMAND_FIELDS),
            "run before discovery, as argv: {prefix}, {project}, {zone} filled in"),
    Setting("gcp.stop_command", "gcp.stop_command", _command_template(COMMAND_FIELDS),
            "run before the labelled deletion, as start_command"),
    Setting("gcp.command_timeout_s", "gcp.command_timeout_s", duration(), "start_command or stop_command (s)"),
    Setting("suite.accelerator", "suite.accelerator", text(ACCELERATOR),
            "the group the standard tests use: tpu or tpu:v5litepod-16", shown_default="discovered"),
    Setting("suite.hosts_per_slice", "suite.hosts_per_slice", count(0), "0: discovered"),
    Setting("suite.region", "suite.region", text(), "the region the region tests pin", shown_default="discovered"),
    Setting("suite.region_attribute", "suite.region_attribute", text(), "the worker attribute that names a region",
            shown_default="region"),
    Setting("suite.probe", "suite.probe", text(choices=PROBES), "accelerator_probe: env or jax (real hardware)"),
    Setting("suite.priority_band", "suite.priority_band", _choice(PriorityBand),
            "a real Iris's band for every job: " + ", ".join(PriorityBand)),
    Setting("suite.many_tasks", "suite.many_tasks", count(1, 10_000), "the replicas of the many_tasks job"),
)
# fmt: on


def _checked(config: RunConfig) -> RunConfig:
    """The checks across settings, after each setting's own."""
    iris, gcp = config.iris, config.gcp
    if iris.proxy_token_file and iris.proxy_token_command:
        raise ConfigError("iris.proxy_token_command: give the proxy token by proxy_token_file or by "
                          "proxy_token_command, not both")  # fmt: skip
    if iris.proxy_token_command and not iris.proxy_token_command[0]:
        raise ConfigError("iris.proxy_token_command: the first word is the program to run, got an empty string")
    for key in ("controller_container", "worker_container"):
        if not getattr(gcp, key):
            raise ConfigError(f"gcp.{key}: required")
    if config.streams.bytes_per_stream < 4096:
        raise ConfigError(
            f"streams.max_run_bytes: must be >= 4096 x max_streams ({4096 * config.streams.max_streams}), "
            f"got {config.streams.max_run_bytes}"
        )
    if config.fleet.query_warn_s > config.fleet.query_fail_s:
        raise ConfigError(f"fleet.query_warn_s: must be at most fleet.query_fail_s ({config.fleet.query_fail_s:g}), "
                          f"got {config.fleet.query_warn_s:g}")  # fmt: skip
    _check_unique_tests(config)
    _check_sets(config)
    config = config.expanded()
    unknown = config.unknown_tests()
    if unknown:
        raise ConfigError(f"run.tests: {unknown_test_message(unknown[0])}")
    return config


def _check_sets(config: RunConfig) -> None:
    """Each set's members are tests (sets do not nest), and no set takes a test's name."""
    known = {*STANDARD_TESTS, *FLEET_CHECKS, *(t.name for t in config.custom_tests)}
    sets = dict(config.sets)
    for name, members in config.sets:
        if name in known:
            raise ConfigError(f"sets.{name}: a test has this name; name the set otherwise")
        for member in members:
            if member in sets:
                raise ConfigError(f"sets.{name}: {member!r} is a set; sets do not nest, list its tests")
            if member not in known:
                raise ConfigError(f"sets.{name}: {unknown_test_message(member)}")


def parse(data: Mapping[str, Any]) -> RunConfig:
    root = Table(data, "")
    tables = {name: root.table_of(name) for name in SECTIONS}
    tables[""] = root  # top-level settings: [sets]
    tests_given = "tests" in tables["run"].table
    values = read(tables, RUN_SETTINGS)
    hosts = _ssh_hosts(tables["ssh"])
    custom_tests = tuple(_test_spec(t) for t in root.tables("tests"))
    for table in (*tables.values(), root):
        table.done()
    config = assigned(RunConfig(custom_tests=custom_tests), values)
    ssh = replace(config.ssh, hosts=hosts, transport=replace(config.ssh.transport,
                  remote_template=config.streams.remote_command))  # fmt: skip
    config = _checked(replace(config, ssh=ssh))
    if config.observe and tests_given and not config.only_fleet_checks():
        raise ConfigError("run.tests: an observe run (run.observe = true) submits no job and runs no tests, only "
                          "fleet checks; drop run.tests, name only fleet checks, or drop run.observe")  # fmt: skip
    return config


def _check_unique_tests(config: RunConfig) -> None:
    seen: set[str] = set()
    for name in [*STANDARD_TESTS, *(t.name for t in config.custom_tests)]:
        if name in seen:
            raise ConfigError(f"tests: the name {name!r} is used twice")
        seen.add(name)


def resolved(config: RunConfig) -> JsonObject:
    """The configuration a run would use, defaults filled in, under the config file's own keys,
    as JSON-ready data (--check-config)."""
    data = settings.resolved(config, RUN_SETTINGS)
    run, ssh = data["run"], data["ssh"]
    assert isinstance(run, dict) and isinstance(ssh, dict)  # sections settings.resolved always makes
    run |= {"discovery_interval_s": config.discovery_every_s, "monitor_interval_s": config.monitor_every_s}
    ssh["hosts"] = [to_json(h) for h in config.ssh.hosts]
    data["tests"] = [_test_table(t) for t in config.custom_tests]
    data["sets"] = {name: list(members) for name, members in config.sets}
    return data


# JobRequest fields a [[tests]] entry does not set (the suite's own: its backstop, a child job,
# the Iris cases' ports and endpoint, the resource cases' CPU, memory, workdir files and band).
_NOT_TEST_KEYS = frozenset({
    "timeout_s", "child", "ports", "endpoint", "endpoint_hold_s",
    "cpu_millicores", "memory_bytes", "workdir_files", "priority_band",
})  # fmt: skip


def _test_table(test: CustomTest) -> JsonObject:
    """A [[tests]] entry as the file gives it."""
    job = {k: v for k, v in to_json_object(test.job).items() if k not in _NOT_TEST_KEYS}
    return {**job, "expect": test.expect}


def load(path: Path | None) -> RunConfig:
    return RunConfig() if path is None else parse(read_toml(path))
