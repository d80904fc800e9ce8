"""The state directory's layout; every path the cluster writes is built here.

    DIR/controller.addr                         host:port, replaced atomically
    DIR/local-cluster.events.jsonl              the cluster's structured events
    DIR/vms/<vm>/iris-worker.log                a VM host's container log
    DIR/vms/<prefix>-controller/iris-controller.log

VM and container names reach this module from the command line, so each is checked
against a strict pattern before it becomes a path component (no `..`, no `/`).
"""

import re
from pathlib import Path

from common.files import write_atomically

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
ADDR_FILE = "controller.addr"
EVENTS_FILE = "local-cluster.events.jsonl"


class BadNameError(ValueError):
    pass


def check_name(kind: str, name: str) -> str:
    if not NAME.match(name):
        raise BadNameError(f"invalid {kind} name {name!r}: must match {NAME.pattern}")
    return name


def vm_dir(state_dir: Path, vm: str) -> Path:
    return state_dir / "vms" / check_name("VM", vm)


def container_log(state_dir: Path, vm: str, container: str) -> Path:
    return vm_dir(state_dir, vm) / f"{check_name('container', container)}.log"


def addr_file(state_dir: Path) -> Path:
    return state_dir / ADDR_FILE


def write_atomic(path: Path, text: str) -> None:
    """A reader sees the old content or the new, never half."""
    write_atomically(path, text.encode())
