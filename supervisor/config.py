"""The run's configuration: a TOML file, then command-line flags on top, validated once.

Every error names the field and says what would be accepted, e.g.
`streams.max_line_bytes: must be an integer >= 1024, got 12`. Nothing is read from the
config after validation: the rest of the program gets frozen dataclasses.
"""

import enum
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.transports import DEFAULT_REMOTE_TEMPLATE

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
PREFIX = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
STANDARD_TESTS = ("simple", "concurrent", "coscheduled")


class ConfigError(ValueError):
    """A bad configuration value; the message starts with the field's name."""


class ClusterKind(enum.StrEnum):
    LOCAL = "local"  # the embedded local cluster (our gRPC API)
    SSH = "ssh"  # an embedded-API cluster reached over ssh
    GCP = "gcp"
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


@dataclass(frozen=True)
class SshHost:
    vm: str
    address: str
    host: int = 0
    role: str = "worker"


@dataclass(frozen=True)
class SshSettings:
    user: str = ""
    port: int = 22
    identity_file: str = ""
    strict_host_key_checking: str = "yes"
    known_hosts_file: str = ""
    connect_timeout_s: float = 10.0
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
    # Consecutive failed host listings that fail the run (discovery_failed).
    discovery_max_failures: int = 6


@dataclass(frozen=True)
class TestSpec:
    name: str
    argv: tuple[str, ...]
    device: str = "cpu"
    variant: str = ""
    count: int = 0
    replicas: int = 1
    group_by: str = ""
    constraints: tuple[Mapping[str, str], ...] = ()
    expect: str = "succeeded"

    def as_args(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "argv": list(self.argv),
            "device": self.device,
            "variant": self.variant,
            "count": self.count,
            "replicas": self.replicas,
            "group_by": self.group_by,
            "constraints": [dict(c) for c in self.constraints],
            "expect": self.expect,
        }


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
    tests: tuple[str, ...] = STANDARD_TESTS
    custom_tests: tuple[TestSpec, ...] = ()
    streams: StreamSettings = field(default_factory=StreamSettings)
    ssh: SshSettings = field(default_factory=SshSettings)
    iris: IrisSettings = field(default_factory=IrisSettings)
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

    def test_names(self) -> list[str]:
        return [*self.tests, *(t.name for t in self.custom_tests)]


class _Reader:
    """Typed access to one TOML table, with the dotted path for error messages."""

    def __init__(self, table: Mapping[str, Any], path: str) -> None:
        self.table = dict(table)
        self.path = path

    def _field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def number(self, key: str, default: float, minimum: float = 0.0, exclusive: bool = True) -> float:
        value = self.table.pop(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{self._field(key)}: must be a number of seconds, got {value!r}")
        if value < minimum or (exclusive and value == minimum):
            raise ConfigError(f"{self._field(key)}: must be {'>' if exclusive else '>='} {minimum}, got {value!r}")
        return float(value)

    def integer(self, key: str, default: int, minimum: int) -> int:
        value = self.table.pop(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{self._field(key)}: must be an integer >= {minimum}, got {value!r}")
        return value

    def string(
        self, key: str, default: str, pattern: re.Pattern[str] | None = None, choices: tuple[str, ...] = ()
    ) -> str:
        value = self.table.pop(key, default)
        if not isinstance(value, str):
            raise ConfigError(f"{self._field(key)}: must be a string, got {value!r}")
        if choices and value not in choices:
            raise ConfigError(f"{self._field(key)}: must be one of {', '.join(choices)}; got {value!r}")
        if pattern is not None and value and not pattern.match(value):
            raise ConfigError(f"{self._field(key)}: must match {pattern.pattern}, got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.table.pop(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self._field(key)}: must be true or false, got {value!r}")
        return value

    def strings(self, key: str, default: tuple[str, ...], pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
        value = self.table.pop(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self._field(key)}: must be a list of strings, got {value!r}")
        for item in value:
            if pattern is not None and not pattern.match(item):
                raise ConfigError(f"{self._field(key)}: {item!r} must match {pattern.pattern}")
        return tuple(value)

    def table_of(self, key: str) -> "_Reader":
        value = self.table.pop(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self._field(key)}: must be a table, got {value!r}")
        return _Reader(value, self._field(key))

    def tables(self, key: str) -> list["_Reader"]:
        value = self.table.pop(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ConfigError(f"{self._field(key)}: must be an array of tables ([[{key}]]), got {value!r}")
        return [_Reader(v, f"{self._field(key)}[{i}]") for i, v in enumerate(value)]

    def done(self) -> None:
        """Unknown keys are errors: a typo must not silently fall back to a default."""
        if self.table:
            key = sorted(self.table)[0]
            raise ConfigError(f"{self._field(key)}: unknown key")


def _test_spec(reader: _Reader) -> TestSpec:
    argv = reader.strings("argv", ())
    if not argv:
        raise ConfigError(f"{reader.path}.argv: must be a non-empty list of strings (the job's argv)")
    constraints = []
    for c in reader.tables("constraints"):
        constraints.append(
            {
                "key": c.string("key", ""),
                "op": c.string("op", "eq", choices=("eq", "ne", "exists")),
                "value": c.string("value", ""),
            }
        )
        c.done()
    spec = TestSpec(
        name=reader.string("name", "", NAME) or _missing(reader, "name"),
        argv=argv,
        device=reader.string("device", "cpu", choices=("cpu", "gpu", "tpu")),
        variant=reader.string("variant", ""),
        count=reader.integer("count", 0, 0),
        replicas=reader.integer("replicas", 1, 1),
        group_by=reader.string("group_by", ""),
        constraints=tuple(constraints),
        expect=reader.string("expect", "succeeded", choices=("succeeded", "failed", "unschedulable", "killed")),
    )
    reader.done()
    return spec


def _missing(reader: _Reader, key: str) -> str:
    raise ConfigError(f"{reader.path}.{key}: required")


def _ssh(reader: _Reader) -> SshSettings:
    hosts = []
    for h in reader.tables("hosts"):
        hosts.append(
            SshHost(
                vm=h.string("vm", "", NAME) or _missing(h, "vm"),
                address=h.string("address", "") or _missing(h, "address"),
                host=h.integer("host", 0, 0),
                role=h.string("role", "worker", choices=("worker", "controller")),
            )
        )
        h.done()
    settings = SshSettings(
        user=reader.string("user", ""),
        port=reader.integer("port", 22, 1),
        identity_file=reader.string("identity_file", ""),
        strict_host_key_checking=reader.string("strict_host_key_checking", "yes", choices=("yes", "no", "accept-new")),
        known_hosts_file=reader.string("known_hosts_file", ""),
        connect_timeout_s=reader.number("connect_timeout_s", 10.0),
        hosts=tuple(hosts),
    )
    reader.done()
    return settings


def _iris(reader: _Reader) -> IrisSettings:
    settings = IrisSettings(
        bin=reader.string("bin", IrisSettings.bin),
        config=reader.string("config", ""),
        token_file=reader.string("token_file", ""),
    )
    reader.done()
    return settings


def _streams(reader: _Reader) -> StreamSettings:
    settings = StreamSettings(
        max_line_bytes=reader.integer("max_line_bytes", 65536, 1024),
        stale_after_s=reader.number("stale_after_s", 300.0),
        remote_command=reader.string("remote_command", StreamSettings.remote_command),
        gone_grace_s=reader.number("gone_grace_s", 30.0, exclusive=False),
        max_streams=reader.integer("max_streams", StreamSettings.max_streams, 1),
        max_stream_bytes=reader.integer("max_stream_bytes", StreamSettings.max_stream_bytes, 4096),
        max_run_bytes=reader.integer("max_run_bytes", StreamSettings.max_run_bytes, 4096),
    )
    if settings.bytes_per_stream < 4096:
        raise ConfigError(
            f"streams.max_run_bytes: must be >= 4096 x max_streams ({4096 * settings.max_streams}), "
            f"got {settings.max_run_bytes}"
        )
    if "{container}" not in settings.remote_command:
        raise ConfigError("streams.remote_command: must contain {container}")
    reader.done()
    return settings


def _verdict(reader: _Reader) -> VerdictSettings:
    policies = tuple(Policy)
    settings = VerdictSettings(
        silent_streams=Policy(reader.string("silent_streams", VerdictSettings.silent_streams, choices=policies)),
        hosts_over_limit=Policy(reader.string("hosts_over_limit", VerdictSettings.hosts_over_limit, choices=policies)),
        discovery_max_failures=reader.integer("discovery_max_failures", VerdictSettings.discovery_max_failures, 1),
    )
    reader.done()
    return settings


def parse(data: Mapping[str, Any]) -> RunConfig:
    root = _Reader(data, "")
    run, cluster = root.table_of("run"), root.table_of("cluster")
    config = RunConfig(
        cluster=ClusterKind(cluster.string("kind", "local", choices=tuple(ClusterKind))),
        controller=cluster.string("controller", ""),
        local_cluster_config=cluster.string("local_config", ""),
        keep=cluster.boolean("keep", False),
        prefix=run.string("prefix", "", PREFIX),
        log_dir=run.string("log_dir", "iris-smoke-runs"),
        timeout_s=run.number("timeout_s", 1800.0),
        boot_timeout_s=run.number("boot_timeout_s", 120.0),
        job_timeout_s=run.number("job_timeout_s", 300.0),
        stop_grace_s=run.number("stop_grace_s", 2.0),
        discovery_interval_s=run.number("discovery_interval_s", 10.0) if "discovery_interval_s" in run.table else None,
        monitor_interval_s=run.number("monitor_interval_s", 1.0) if "monitor_interval_s" in run.table else None,
        tests=_standard_tests(run),
        custom_tests=tuple(_test_spec(t) for t in root.tables("tests")),
        streams=_streams(root.table_of("streams")),
        ssh=_ssh(root.table_of("ssh")),
        iris=_iris(root.table_of("iris")),
        verdict=_verdict(root.table_of("verdict")),
    )
    for reader in (run, cluster, root):
        reader.done()
    _check_unique_tests(config)
    return config


def _standard_tests(run: _Reader) -> tuple[str, ...]:
    names = run.strings("tests", STANDARD_TESTS)
    for name in names:
        if name not in STANDARD_TESTS:
            raise ConfigError(f"run.tests: {name!r} is not a standard test ({', '.join(STANDARD_TESTS)})")
    return names


def _check_unique_tests(config: RunConfig) -> None:
    seen: set[str] = set()
    for name in config.test_names():
        if name in seen:
            raise ConfigError(f"tests: the name {name!r} is used twice")
        seen.add(name)


def load(path: Path | None) -> RunConfig:
    if path is None:
        return RunConfig()
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config: {path} is not valid TOML: {exc}") from None
    return parse(data)
