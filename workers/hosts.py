"""One VM host whose container log is streamed, and the names we accept for it.

Every name that may end up in a command line (a local argv, or worse, a remote shell
command sent over ssh) is checked against the GCE resource-name rule first, with no
exceptions: `^[a-z0-9][a-z0-9._-]{0,62}$`. A name that fails is hostile until proven
otherwise (`vm;touch pwned`, `$(id)`, `../x`, a newline) and is rejected, never quoted
and passed on.

File names: a VM with one host streams to `logs/vms/<vm>.jsonl`; a VM with several hosts
(a multi-host TPU slice, where `vm` is the slice name) streams each host to
`logs/vms/<vm>-<host>.jsonl`. Which of the two is decided by `hosts_in_vm`, which
discovery knows from the slice topology, never by whether `host` happens to be 0: host 0
of a 4-host slice is `<slice>-0.jsonl` from the first line on, so a file is never renamed
when more hosts show up. The controller streams to `logs/controller.jsonl`.
Known ambiguity: a single-host VM named `x-1` and host 1 of a multi-host slice `x` map
to the same file; the caller (one writer per file) must refuse the second one, and each
stream child holds an exclusive lock on its file to make a double writer fail loudly.
"""

import enum
import ipaddress
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

# re.ASCII so \d-like classes stay ASCII; fullmatch so a trailing "\n" does not slip
# through the way `$` would let it.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}", re.ASCII)
# Addresses are hostnames or IPv4/IPv6 literals (`::1` starts with a colon): no leading
# "-" (ssh would read an option), no whitespace, no shell metacharacters.
ADDRESS_PATTERN = re.compile(r"[A-Za-z0-9:][A-Za-z0-9.:_-]{0,252}", re.ASCII)
MAX_HOSTS_PER_VM = 1024


class Role(enum.StrEnum):
    CONTROLLER = "controller"
    WORKER = "worker"


class Refusal(enum.StrEnum):
    """Why a name was refused (a key of `hosts_rejected`'s `reasons`, workers/rejected.py)."""

    INVALID_NAME = "invalid_name"
    NOT_A_RESOURCE_PATH = "not_a_resource_path"  # a path, but not of the expected shape
    ZONE_NOT_LISTED = "zone_not_listed"  # a zone other than the one(s) we listed
    DUPLICATE = "duplicate"  # a worker id listed before in the same listing


class HostileNameError(ValueError):
    """A name that may not reach a command line; `field` says which one, `reason` why."""

    def __init__(self, field: str, value: object, reason: Refusal = Refusal.INVALID_NAME) -> None:
        why = "" if reason is Refusal.INVALID_NAME else f": {reason}"
        super().__init__(f"{field}: {value!r} is not a valid name (expected {NAME_PATTERN.pattern}){why}")
        self.field = field
        self.value = value
        self.reason = reason


def validate_name(kind: str, value: object) -> str:
    """Return `value` if it is a GCE-style name, else raise HostileNameError naming `kind`."""
    if not isinstance(value, str) or NAME_PATTERN.fullmatch(value) is None:
        raise HostileNameError(kind, value)
    return value


def validate_address(kind: str, value: object) -> str:
    if not isinstance(value, str) or ADDRESS_PATTERN.fullmatch(value) is None:
        raise HostileNameError(kind, value)
    return value


def split_address(field: str, address: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]:port` or a bare IPv6 literal -> (host, port or None).

    Raises HostileNameError naming `field` for a host that may not reach a command line
    or a port that is not one.
    """
    host, port = address, ""
    if not address:
        return "", None  # no address listed: nothing to hand to ssh, and nothing hostile
    if address.startswith("["):
        host, bracket, rest = address[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise HostileNameError(field, address)
        port = rest[1:]
    elif address.count(":") == 1:  # two or more: a bare IPv6 literal, which has no port
        host, _, port = address.partition(":")
    if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise HostileNameError(field, address)
    if ":" in host and not _ipv6(host):  # `a:b:c` is neither a name nor an address
        raise HostileNameError(field, address)
    return validate_address(field, host), int(port) if port else None


def _ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def validate_host_index(kind: str, value: object) -> int:
    # bool is an int subclass; True is not a host index.
    if type(value) is not int or not 0 <= value < MAX_HOSTS_PER_VM:
        raise HostileNameError(kind, value)
    return value


@dataclass(frozen=True)
class VmHost:
    vm: str
    host: int
    role: Role
    address: str
    zone: str = ""
    hosts_in_vm: int = 1

    def __post_init__(self) -> None:
        validate_name("vm", self.vm)
        validate_host_index("host", self.host)
        validate_address("address", self.address)
        if self.zone:
            validate_name("zone", self.zone)
        if type(self.hosts_in_vm) is not int or not 1 <= self.hosts_in_vm <= MAX_HOSTS_PER_VM:
            raise HostileNameError("hosts_in_vm", self.hosts_in_vm)
        if self.host >= self.hosts_in_vm:
            raise HostileNameError("host", self.host)
        object.__setattr__(self, "role", Role(self.role))

    @property
    def multi_host(self) -> bool:
        return self.hosts_in_vm > 1

    @property
    def key(self) -> str:
        """Stable identity: `controller`, `<vm>` or `<vm>:<host>` (a worker's child is `stream:<key>`;
        the controller's is `stream:controller@<vm>`, see supervisor.streams.stream_name)."""
        if self.role is Role.CONTROLLER:
            return "controller"
        return f"{self.vm}:{self.host}" if self.multi_host else self.vm

    @property
    def log_path(self) -> PurePosixPath:
        """The stream file, relative to the run directory."""
        if self.role is Role.CONTROLLER:
            return PurePosixPath("logs/controller.jsonl")
        name = f"{self.vm}-{self.host}" if self.multi_host else self.vm
        return PurePosixPath("logs/vms") / f"{name}.jsonl"
