"""The canary's configuration: flags, a TOML file whose keys mirror them, defaults (CANARY_SETTINGS).

Precedence, per field: a flag given on the command line, then the config file, then the
environment where systemd provides the value (`STATE_DIRECTORY`, and the unit's own
`IRIS_SMOKE_TIMEOUT_STOP_SEC`, since systemd does not export `TimeoutStopSec`), then the
default. Every error names the field (`--interval` or `config FILE: interval`), and the
command line turns it into exit 2. SIGHUP re-reads the file and merges it with the same
flags, so a flag keeps winning over a reload.
"""

import dataclasses
import ipaddress
import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

from common import inputs
from common.errors import ConfigError
from common.jsonshape import JsonObject
from common.toml_table import read_toml
from supervisor.settings import Setting, assigned

DEFAULT_INTERVAL_S = 900.0
DEFAULT_RUN_TIMEOUT_S = 600.0
DEFAULT_CLEANUP_BUDGET_S = 60.0
DEFAULT_KEEP_RUNS = 96
DEFAULT_MAX_BYTES = 10 * 1024**3
DEFAULT_STATE_DIR = "iris-smoke-canary"
TIMEOUT_STOP_ENV = "IRIS_SMOKE_TIMEOUT_STOP_SEC"
# Loopback by default: exposing it further is an explicit choice (`listen = "[::]:9464"`).
DEFAULT_LISTEN_PORT = 9464
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclasses.dataclass(frozen=True)
class Listen:
    """Where `/metrics` and `/healthz` are served: an IP literal (v4 or v6) and a port (0: any free)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_LISTEN_PORT

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class Probe:
    """A `[[probes]]` entry: runs of its own test selection on its own grid."""

    name: str
    interval_s: float
    tests: tuple[str, ...] = ()  # passed as the run's --tests (test or set names); () = the run's own
    run_timeout_s: float | None = None  # None: the canary's run_timeout

    def as_table(self) -> JsonObject:
        """The `[[probes]]` table it was read from (--check-config prints it)."""
        table: JsonObject = {"name": self.name, "interval": self.interval_s, "tests": list(self.tests)}
        return table | ({} if self.run_timeout_s is None else {"run_timeout": self.run_timeout_s})


# With no `[[probes]]`, the canary has one probe, the suite its run_args select, named this.
SUITE_PROBE = "suite"


@dataclasses.dataclass(frozen=True)
class CanaryConfig:
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    interval_s: float = DEFAULT_INTERVAL_S
    keep_runs: int = DEFAULT_KEEP_RUNS
    max_bytes: int = DEFAULT_MAX_BYTES
    listen: Listen = Listen()
    # The `cluster` label of every metric; by default the state directory's name, which is the
    # instance under the template unit (one canary per cluster on a host, each its own state).
    cluster_name: str | None = None
    run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S
    cleanup_budget_s: float = DEFAULT_CLEANUP_BUDGET_S
    unit_timeout_stop_s: float | None = None
    run_command: tuple[str, ...] = (sys.executable, "-m", "supervisor", "run")
    run_args: tuple[str, ...] = ()
    probes: tuple[Probe, ...] = ()
    # Not in --help: stop after this many runs (tests and soaks), exit 0.
    max_runs: int | None = None

    @property
    def schedule(self) -> tuple[Probe, ...]:
        """The probes the daemon runs: the `[[probes]]`, or the one suite on `interval`."""
        return self.probes or (Probe(SUITE_PROBE, self.interval_s),)

    def timeout_of(self, probe: Probe) -> float:
        return self.run_timeout_s if probe.run_timeout_s is None else probe.run_timeout_s

    @property
    def cluster(self) -> str:
        return self.cluster_name or self.state_dir.absolute().name or "canary"

    def changed(self, other: "CanaryConfig") -> list[str]:
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(other, f.name)]


_SIZE = re.compile(r"\s*(\d+)\s*([KMGT]?)(i?B)?\s*", re.IGNORECASE | re.ASCII)


def parse_size(value: object) -> int:
    """Bytes: an integer, or `500M`, `10G`, `1GiB` (binary multiples)."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value)):
        size = int(match[1]) * 1024 ** " KMGT".index(match[2].upper() or " ")
    else:
        raise ValueError(f"expected bytes like 1073741824, 500M or 10G, got {value!r}")
    return inputs.whole(size, 1, inputs.MAX_BYTES)


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, str) and not value.strip().isdigit():
        raise ValueError(f"expected a whole number, got {value!r}")
    return int(value)


def _count(value: object) -> int:
    return inputs.whole(_integer(value), 1, inputs.MAX_COUNT)


def _port(value: object) -> int:
    port = _integer(value)
    if not 0 <= port <= 65535:
        raise ValueError(f"must be a TCP port, 0 for any free one, got {value!r}")
    return port


def _listen(value: object) -> Listen:
    """`HOST:PORT` with HOST an IP address (`[::]:9464` for IPv6) or `:PORT` for every IPv4 and IPv6 address."""
    text = value if isinstance(value, str) else ""
    host, sep, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        port = _port(port_text) if sep else -1
        address = ipaddress.ip_address(host or "::")
    except ValueError:
        port = -1
    if port < 0 or (":" in host and not text.startswith("[")):
        raise ValueError(f"expected HOST:PORT like 127.0.0.1:9464, 0.0.0.0:9464 or [::]:9464, got {value!r}")
    return Listen(str(address), port)


def _cluster_name(value: object) -> str:
    if not isinstance(value, str) or not _CLUSTER_NAME.fullmatch(value):
        raise ValueError(f"expected a name like prod-v5e (letters, digits, . _ -; up to 63), got {value!r}")
    return value


def _path(value: object) -> Path:
    if not isinstance(value, str | Path) or not str(value):
        raise ValueError(f"expected a directory path, got {value!r}")
    return Path(value)


def _argv(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ValueError(f'expected a list of arguments like ["--cluster", "local"], got {value!r}')
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(value)


def _command(value: object) -> tuple[str, ...]:
    argv = _argv(value)
    if not argv:
        raise ValueError("must name a program")
    return argv


_PROBE_KEYS = ("name", "interval", "tests", "run_timeout")


def _probe(value: object) -> Probe:
    if not isinstance(value, dict):
        raise ValueError(f'expected a table like {{name = "vitals", interval = "1m", tests = "vitals"}}, got {value!r}')
    unknown = sorted(set(value) - set(_PROBE_KEYS))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown key (known: {', '.join(_PROBE_KEYS)})")
    for key in ("name", "interval"):
        if key not in value:
            raise ValueError(f"{key}: required")
    try:
        name = _cluster_name(value["name"])
    except ValueError as exc:
        raise ValueError(f"name: {exc}") from None
    tests = value.get("tests", ())
    tests = (tests,) if isinstance(tests, str) else tests
    if not all(isinstance(t, str) and t and "," not in t for t in tests):
        raise ValueError(f"tests: expected a test set name or a list of test names, got {value['tests']!r}")
    timeout = value.get("run_timeout")
    return Probe(
        name, inputs.seconds(value["interval"]), tuple(tests), None if timeout is None else inputs.seconds(timeout)
    )


def _probes(value: object) -> tuple[Probe, ...]:
    """`[[probes]]`: each a name, an interval, optional tests (a set name or a list) and run_timeout."""
    if not isinstance(value, list):
        raise ValueError("expected [[probes]] tables, each with a name and an interval")
    probes = []
    for index, item in enumerate(value):
        try:
            probes.append(_probe(item))
        except ValueError as exc:
            raise ValueError(f"[{index}]: {exc}") from None
    names = [p.name for p in probes]
    if len(set(names)) != len(names):
        raise ValueError(f"probe names must differ, got {names}")
    return tuple(probes)


# Every canary setting, declared once (supervisor/settings.py): a top-level key of the config
# file, and its flag (the same name with dashes) where it has one.
CANARY_SETTINGS: tuple[Setting, ...] = (
    Setting("state_dir", "state_dir", _path, "lock, runs/, metrics/, events", "--state-dir",
            shown_default=f"$STATE_DIRECTORY or ./{DEFAULT_STATE_DIR}"),
    Setting("interval", "interval_s", inputs.seconds, "time between run starts: 90s, 15m, 1h or seconds",
            "--interval"),
    Setting("keep_runs", "keep_runs", _count, "run directories to keep", "--keep-runs", metavar="N"),
    Setting("max_bytes", "max_bytes", parse_size, "bytes all run directories may use: 500M, 10G", "--max-bytes",
            metavar="B", shown_default=f"{DEFAULT_MAX_BYTES >> 30}G"),
    Setting("listen", "listen", _listen, "serve /metrics and /healthz here: an IP, [::] for IPv6, port 0 for any",
            "--listen", metavar="HOST:PORT"),
    Setting("cluster_name", "cluster_name", _cluster_name, "the `cluster` label of every metric", "--cluster-name",
            metavar="NAME", shown_default="the state directory's name"),
    Setting("run_timeout", "run_timeout_s", inputs.seconds, "each run's deadline, passed as its --timeout",
            "--run-timeout", metavar="S"),
    Setting("cleanup_budget", "cleanup_budget_s", inputs.seconds, "time a run gets to clean up after SIGTERM",
            "--cleanup-budget", metavar="S"),
    Setting("unit_timeout_stop", "unit_timeout_stop_s", inputs.seconds,
            "the unit's TimeoutStopSec; budgets must fit in it", "--unit-timeout-stop", metavar="S",
            shown_default=f"${TIMEOUT_STOP_ENV}"),
    # Hidden: a different program as the run (tests, soaks), and a run count to stop after.
    Setting("run_command", "run_command", _command, "the program a run is", "--run-command", split=shlex.split,
            hidden=True),
    Setting("run_args", "run_args", _argv, "arguments passed to every run (on the command line: after `--`)"),
    Setting("probes", "probes", _probes, "[[probes]]: name, interval, tests (a set or a list), run_timeout; "
            "replace the one suite on `interval`", shown_default="one probe `suite`"),
    Setting("max_runs", "max_runs", _count, "stop after this many runs", "--max-runs", hidden=True),
)  # fmt: skip
_BY_NAME = {s.name: s for s in CANARY_SETTINGS}


def load_file(path: Path) -> dict[str, object]:
    """The config file's values, parsed and keyed by dataclass field."""
    raw = read_toml(path)
    values: dict[str, object] = {}
    for key, value in raw.items():
        if key == "metrics_port":
            raise ConfigError(f'config {path}: metrics_port: replaced by listen (listen = "127.0.0.1:{value}")')
        if key not in _BY_NAME:
            known = ", ".join(_BY_NAME)
            raise ConfigError(f"config {path}: {key}: unknown field (known: {known})")
        setting = _BY_NAME[key]
        try:
            values[setting.attr] = setting.check(value)
        except ValueError as exc:
            raise ConfigError(f"config {path}: {key}: {exc}") from None
    return values


def from_environment(environ: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    # systemd sets STATE_DIRECTORY to the unit's StateDirectory= (colon-separated if several).
    if state := environ.get("STATE_DIRECTORY", "").split(":")[0]:
        values["state_dir"] = Path(state)
    if stop := environ.get(TIMEOUT_STOP_ENV, ""):
        try:
            values["unit_timeout_stop_s"] = inputs.seconds(stop)
        except ValueError as exc:
            raise ConfigError(f"${TIMEOUT_STOP_ENV}: {exc}") from None
    return values


def resolve(flags: Mapping[str, object], config_path: Path | None, environ: Mapping[str, str]) -> CanaryConfig:
    """Merge defaults < environment < config file < flags (all already parsed)."""
    values = from_environment(environ)
    if config_path is not None:
        values |= load_file(config_path)
    values |= dict(flags)
    return assigned(CanaryConfig(), values)
