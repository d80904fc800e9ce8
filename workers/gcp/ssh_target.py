"""One host's ssh command, asked of gcloud once (`… ssh --dry-run`) and then run ourselves.

A `gcloud compute ssh` per stream would keep a Python process of tens of MB alive beside
every `ssh`; a 256-host slice would cost gigabytes on the bastion. `--dry-run` prints the
ssh command gcloud would run (keys propagated, user and address chosen, its known-hosts
file and host-key alias), which we parse once per host and reuse for every connection.

The printed line is parsed, never run: only `-t`/`-T`, `-i FILE`, `-p PORT`, `-o KEY=VALUE`
for the options in `PASSED_OPTIONS` and a final `USER@HOST` are accepted; anything else
(a `ProxyCommand`, a `LocalCommand`, an unknown flag) is refused with its text, so a
changed gcloud is noticed rather than half-understood.
"""

import os
import re
import shlex
from dataclasses import dataclass, field, replace

from workers.gcp.inventory import Resource, ResourceKind
from workers.hosts import validate_address, validate_name
from workers.transports import STRICT_HOST_KEY_CHECKING

# Options gcloud sets that we pass on as they are (HostKeyAlias names the key gcloud stored).
PASSED_OPTIONS = frozenset({"CheckHostIP", "HashKnownHosts", "HostKeyAlias", "IdentitiesOnly"})
_VALUE = re.compile(r"[A-Za-z0-9._:@/+-]{1,200}", re.ASCII)
_PATH = re.compile(r"/[A-Za-z0-9._/+-]{1,200}", re.ASCII)


class DryRunRefused(ValueError):
    """gcloud's dry-run printed something we do not run; the message quotes it."""


@dataclass(frozen=True)
class SshTarget:
    user: str
    address: str
    port: int = 22
    identity_file: str = ""
    known_hosts_file: str = ""
    strict_host_key_checking: str = ""  # "": the configured default
    options: tuple[str, ...] = field(default=())  # "Key=Value", keys from PASSED_OPTIONS


def dry_run_words(resource: Resource, worker: int) -> list[str]:
    """The gcloud words (before `--project`) that print the ssh command for one host."""
    if resource.kind is ResourceKind.TPU:
        words = ["compute", "tpus", "tpu-vm", "ssh", resource.name, f"--worker={worker}"]
    else:
        words = ["compute", "ssh", resource.name]
    return [*words, f"--zone={resource.zone}", "--dry-run", "--quiet"]


def parse_dry_run(text: str) -> SshTarget:
    try:
        words = shlex.split(text.strip().splitlines()[-1] if text.strip() else "")
    except ValueError as exc:
        raise DryRunRefused(f"not a command line ({exc}): {text[:200]!r}") from None
    if not words or os.path.basename(words[0]) != "ssh":
        raise DryRunRefused(f"not an ssh command: {text[:200]!r}")
    found = SshTarget("", "")  # the options read so far; user and address come last
    rest = words[1:]
    while len(rest) > 1:
        flag, rest = rest[0], rest[1:]
        if flag in ("-t", "-T"):
            continue
        if flag in ("-i", "-p", "-o") and rest:
            found = _take(found, flag, rest[0])
            rest = rest[1:]
        elif flag.startswith("-o") and len(flag) > 2:
            found = _take(found, "-o", flag[2:])
        else:
            raise DryRunRefused(f"unexpected {flag!r} in {text[:200]!r}")
    if len(rest) != 1 or "@" not in rest[0]:
        raise DryRunRefused(f"no USER@HOST at the end of {text[:200]!r}")
    user, _, address = rest[0].rpartition("@")
    user, address = validate_name("ssh user", user), validate_address("ssh address", address)
    return replace(found, user=user, address=address)


def _take(found: SshTarget, flag: str, value: str) -> SshTarget:
    """`found` with one more option of the command line read."""
    if flag == "-i":
        return replace(found, identity_file=_path(value))
    if flag == "-p":
        if not (value.isascii() and value.isdigit() and 0 < int(value) < 65536):
            raise DryRunRefused(f"-p {value!r} is not a port")
        return replace(found, port=int(value))
    key, sep, option = value.partition("=")
    if not sep:
        raise DryRunRefused(f"-o {value!r} is not KEY=VALUE")
    if key == "UserKnownHostsFile":
        return replace(found, known_hosts_file=_path(option))
    if key == "StrictHostKeyChecking" and option in STRICT_HOST_KEY_CHECKING:
        return replace(found, strict_host_key_checking=option)
    if key in PASSED_OPTIONS and _VALUE.fullmatch(option):
        return replace(found, options=(*found.options, f"{key}={option}"))
    raise DryRunRefused(f"-o {value!r} is not an option we pass on")


def _path(value: str) -> str:
    if _PATH.fullmatch(value) is None or "/../" in value + "/":
        raise DryRunRefused(f"{value!r} is not an absolute path we pass to ssh")
    return value
