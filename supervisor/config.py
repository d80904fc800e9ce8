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
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from common.controller_target import (
    DEFAULT_MAX_LOG_PAGE_BYTES,
    DEFAULT_MAX_REPLY_BYTES,
    PROXY_TOKEN_TTL_S,
    PriorityBand,
    ProxyToken,
)
from common.errors import ConfigError
from supervisor import inputs
from supervisor.toml_table import Table, read_toml
from workers.child_args import TUNNEL_FIELDS, CustomTest, TunnelCommand
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
)  # fmt: skip
PROBES = ("env", "jax")
# A reply cap: at least an error page, at most what a child may hold (parsed, about 7 times that).
MIN_REPLY_BYTES = 64 * 1024
MAX_REPLY_BYTES = 1024 * 1024 * 1024
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


class ClusterKind(enum.StrEnum):
    LOCAL = "local"  # the embedded local cluster (our gRPC API)
    SSH = "ssh"  # an embedded-API cluster reached over ssh
    GCP = "gcp"  # TPU slices and VMs found with gcloud, the Iris controller through an ssh tunnel
    IRIS = "iris"  # attach to a real Iris controller (Connect over HTTP)
    IRIS_LOCAL = "iris-local"  # a real Iris local cluster, started and stopped by the run

    @property
    def real_iris(self) -> bool:
        return self in (ClusterKind.IRIS, ClusterKind.IRIS_LOCAL)


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


@dataclass(frozen=True)
class RunConfig:
    cluster: ClusterKind = ClusterKind.LOCAL
    controller: str = ""
    local_cluster_config: str = ""
    keep: bool = False
    prefix: str = ""
    log_dir: str = "iris-smoke-runs"
    timeout_s: float = 1800.0
    boot_timeout_s: float = 120.0
    job_timeout_s: float = 300.0
    stop_grace_s: float = 2.0
    # None: 1 s for the local cluster (listing it is a local RPC), 10 s for real clouds.
    discovery_interval_s: float | None = None
    # None: 0.25 s on a local cluster (a pending reason lasts as long as a local boot), 1 s elsewhere.
    monitor_interval_s: float | None = None
    # The selection: standard and [[tests]] names; [[tests]] all run when it names none of them.
    tests: tuple[str, ...] = STANDARD_TESTS
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
        return 1.0 if self.cluster in (ClusterKind.LOCAL, ClusterKind.IRIS_LOCAL) else 10.0

    @property
    def monitor_every_s(self) -> float:
        if self.monitor_interval_s is not None:
            return self.monitor_interval_s
        return 0.25 if self.cluster in (ClusterKind.LOCAL, ClusterKind.IRIS_LOCAL) else 1.0

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
        return [*self.standard_tests(), *(t.name for t in self.selected_custom_tests())]

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
        known = {*STANDARD_TESTS, *(t.name for t in self.custom_tests)}
        return [n for n in self.tests if n not in known]


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


def _ssh(reader: Table, remote_template: str) -> SshSettings:
    hosts = tuple(_ssh_host(h) for h in reader.tables("hosts"))
    seen: set[tuple[str, int]] = set()
    for i, h in enumerate(hosts):
        if (h.vm, h.host) in seen:
            raise ConfigError(f"ssh.hosts[{i}].vm: {h.vm!r} host {h.host} is listed twice; give each VM host once")
        seen.add((h.vm, h.host))
    user = reader.string("user", "")
    if user:
        with reader.naming("user"):
            inputs.ssh_user(user)
    d = SshTransport(user=user or getpass.getuser())
    transport = replace(
        d,
        port=reader.integer("port", d.port, 1, 65535),
        identity_file=_path(reader, "identity_file") or None,
        strict_host_key_checking=reader.string(
            "strict_host_key_checking", d.strict_host_key_checking, choices=("yes", "no", "accept-new")
        ),
        known_hosts_file=reader.string("known_hosts_file", "") or None,
        connect_timeout_s=max(1, round(reader.number("connect_timeout_s", d.connect_timeout_s))),
        remote_template=remote_template,
    )
    reader.done()
    return SshSettings(transport=transport, hosts=hosts)


def _path(reader: Table, key: str) -> str:
    """A file path; a leading `$CREDENTIALS_DIRECTORY/` is the unit's credentials directory."""
    with reader.naming(key):
        return inputs.credential_path(reader.string(key, ""))


def _iris(reader: Table) -> IrisSettings:
    settings = IrisSettings(
        bin=reader.string("bin", IrisSettings.bin),
        config=reader.string("config", ""),
        token_file=_path(reader, "token_file"),
        token_env=reader.string("token_env", "", ENV_NAME),
        max_reply_bytes=reader.integer("max_reply_bytes", DEFAULT_MAX_REPLY_BYTES, MIN_REPLY_BYTES, MAX_REPLY_BYTES),
        max_log_page_bytes=reader.integer(
            "max_log_page_bytes", DEFAULT_MAX_LOG_PAGE_BYTES, MIN_REPLY_BYTES, MAX_REPLY_BYTES
        ),
        allow_insecure_http=reader.boolean("allow_insecure_http", IrisSettings.allow_insecure_http),
        proxy_token_file=_path(reader, "proxy_token_file"),
        proxy_token_command=reader.strings("proxy_token_command", ()),
        proxy_token_ttl_s=reader.number("proxy_token_ttl_s", PROXY_TOKEN_TTL_S),
        tunnel_command=_command_template(reader, "tunnel_command", TUNNEL_FIELDS, required="port"),
        controller_port=reader.integer("controller_port", IrisSettings.controller_port, 1, 65535),
    )
    reader.done()
    if settings.proxy_token_file and settings.proxy_token_command:
        raise ConfigError("iris.proxy_token_command: give the proxy token by proxy_token_file or by "
                          "proxy_token_command, not both")  # fmt: skip
    if settings.proxy_token_command and not settings.proxy_token_command[0]:
        raise ConfigError("iris.proxy_token_command: the first word is the program to run, got an empty string")
    return settings


def _gcp(reader: Table) -> GcpSettings:
    d = GcpSettings()
    settings = GcpSettings(
        project=reader.string("project", d.project, NAME),
        zones=reader.strings("zones", d.zones, NAME),
        label_prefix=reader.string("label_prefix", d.label_prefix, PREFIX),
        controller_name=reader.string("controller_name", d.controller_name, NAME),
        controller_port=reader.integer("controller_port", d.controller_port, 1, 65535),
        controller_container=reader.string("controller_container", d.controller_container, NAME),
        worker_container=reader.string("worker_container", d.worker_container, NAME),
        gcloud=reader.string("gcloud", d.gcloud),
        call_timeout_s=reader.number("call_timeout_s", d.call_timeout_s),
        delete_timeout_s=reader.number("delete_timeout_s", d.delete_timeout_s),
        strict_host_key_checking=reader.string(
            "strict_host_key_checking", d.strict_host_key_checking, choices=("yes", "no", "accept-new")
        ),
        connect_timeout_s=reader.integer("connect_timeout_s", d.connect_timeout_s, 1, 3600),
        start_command=_command_template(reader, "start_command", COMMAND_FIELDS),
        stop_command=_command_template(reader, "stop_command", COMMAND_FIELDS),
        command_timeout_s=reader.number("command_timeout_s", d.command_timeout_s),
    )
    for key, value in (("controller_container", settings.controller_container),
                       ("worker_container", settings.worker_container)):  # fmt: skip
        if not value:
            _missing(reader, key)
    reader.done()
    return settings


def _command_template(reader: Table, key: str, fields: frozenset[str], required: str = "") -> tuple[str, ...]:
    """An argv template (a list, never a shell line) using only `fields`, and `required` if given."""
    allowed = ", ".join(f"{{{f}}}" for f in sorted(fields))
    with reader.naming(key):
        if isinstance(reader.table.get(key), str):
            raise ValueError(f"must be a list of strings (an argv, never a shell line), e.g. "
                             f"{json.dumps(reader.table[key].split())}; only {allowed} are filled in")  # fmt: skip
        template = reader.strings(key, ())
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


def _streams(reader: Table) -> StreamSettings:
    d = StreamSettings()
    settings = StreamSettings(
        max_line_bytes=reader.integer("max_line_bytes", d.max_line_bytes, 1024, inputs.MAX_LINE_BYTES),
        stale_after_s=reader.number("stale_after_s", d.stale_after_s),
        remote_command=_remote_command(reader),
        gone_grace_s=reader.number("gone_grace_s", d.gone_grace_s, allow_zero=True),
        max_streams=reader.integer("max_streams", StreamSettings.max_streams, 1),
        max_stream_bytes=reader.integer("max_stream_bytes", StreamSettings.max_stream_bytes, 4096, inputs.MAX_BYTES),
        max_run_bytes=reader.integer("max_run_bytes", StreamSettings.max_run_bytes, 4096, inputs.MAX_BYTES),
    )
    if settings.bytes_per_stream < 4096:
        raise ConfigError(
            f"streams.max_run_bytes: must be >= 4096 x max_streams ({4096 * settings.max_streams}), "
            f"got {settings.max_run_bytes}"
        )
    reader.done()
    return settings


def _verdict(reader: Table) -> VerdictSettings:
    policies = tuple(Policy)
    settings = VerdictSettings(
        silent_streams=Policy(reader.string("silent_streams", VerdictSettings.silent_streams, choices=policies)),
        hosts_over_limit=Policy(reader.string("hosts_over_limit", VerdictSettings.hosts_over_limit, choices=policies)),
        hosts_rejected=Policy(reader.string("hosts_rejected", VerdictSettings.hosts_rejected, choices=policies)),
        discovery_max_failures=reader.integer("discovery_max_failures", VerdictSettings.discovery_max_failures, 1),
    )
    reader.done()
    return settings


def _remote_command(reader: Table) -> str:
    """The follow command: only `{since}` and `{container}`, and `{container}` required."""
    template = reader.string("remote_command", StreamSettings.remote_command)
    fix = "use only {since} and {container}, and {{ }} for a literal brace"
    try:
        fields = {name for _text, name, _spec, _conv in string.Formatter().parse(check_template(template))}
    except (TransportConfigError, ValueError) as exc:
        raise ConfigError(f"streams.remote_command: {exc}; {fix}") from None
    if "container" not in fields:
        raise ConfigError(f"streams.remote_command: must contain {{container}}; {fix}")
    return template


def parse(data: Mapping[str, Any]) -> RunConfig:
    root, d = Table(data, ""), RunConfig()
    run, cluster = root.table_of("run"), root.table_of("cluster")
    streams = _streams(root.table_of("streams"))
    config = RunConfig(
        cluster=ClusterKind(cluster.string("kind", d.cluster, choices=tuple(ClusterKind))),
        controller=cluster.string("controller", ""),
        local_cluster_config=cluster.string("local_config", ""),
        keep=cluster.boolean("keep", d.keep),
        prefix=run.string("prefix", "", PREFIX),
        log_dir=run.string("log_dir", d.log_dir),
        timeout_s=run.number("timeout_s", d.timeout_s),
        boot_timeout_s=run.number("boot_timeout_s", d.boot_timeout_s),
        job_timeout_s=run.number("job_timeout_s", d.job_timeout_s),
        stop_grace_s=run.number("stop_grace_s", d.stop_grace_s),
        discovery_interval_s=run.number("discovery_interval_s", 10.0) if "discovery_interval_s" in run.table else None,
        monitor_interval_s=run.number("monitor_interval_s", 1.0) if "monitor_interval_s" in run.table else None,
        observe=run.boolean("observe", d.observe),
        observe_s=run.number("observe_s", d.observe_s),
        custom_tests=tuple(_test_spec(t) for t in root.tables("tests")),
        suite=_suite(root.table_of("suite")),
        streams=streams,
        ssh=_ssh(root.table_of("ssh"), streams.remote_command),
        iris=_iris(root.table_of("iris")),
        gcp=_gcp(root.table_of("gcp")),
        verdict=_verdict(root.table_of("verdict")),
    )
    if config.observe and "tests" in run.table:
        raise ConfigError("run.tests: an observe run (run.observe = true) submits no job and runs no tests; "
                          "drop run.tests or run.observe")  # fmt: skip
    config = replace(config, tests=run.strings("tests", d.tests))
    for reader in (run, cluster, root):
        reader.done()
    _check_unique_tests(config)
    unknown = config.unknown_tests()
    if unknown:
        raise ConfigError(f"run.tests: {unknown[0]!r} is neither a standard test ({', '.join(STANDARD_TESTS)}) "
                          "nor a [[tests]] name")  # fmt: skip
    return config


def _suite(reader: Table) -> SuiteSettings:
    d = SuiteSettings()
    suite = SuiteSettings(
        accelerator=reader.string("accelerator", d.accelerator, ACCELERATOR),
        hosts_per_slice=reader.integer("hosts_per_slice", 0, 0),
        region=reader.string("region", d.region),
        region_attribute=reader.string("region_attribute", d.region_attribute),
        probe=reader.string("probe", d.probe, choices=PROBES),
        priority_band=PriorityBand(reader.string("priority_band", d.priority_band, choices=tuple(PriorityBand))),
    )
    reader.done()
    return suite


def _check_unique_tests(config: RunConfig) -> None:
    seen: set[str] = set()
    for name in [*STANDARD_TESTS, *(t.name for t in config.custom_tests)]:
        if name in seen:
            raise ConfigError(f"tests: the name {name!r} is used twice")
        seen.add(name)


def resolved(config: RunConfig) -> dict[str, Any]:
    """The configuration a run would use, defaults filled in, as JSON-ready data (--check-config)."""
    data = asdict(config)
    data["discovery_interval_s"] = config.discovery_every_s
    data["monitor_interval_s"] = config.monitor_every_s
    return data


def load(path: Path | None) -> RunConfig:
    return RunConfig() if path is None else parse(read_toml(path))
