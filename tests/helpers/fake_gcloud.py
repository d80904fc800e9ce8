"""A fake `gcloud` for tests: records every argv and emulates the calls iris-smoke makes.

Install one with `FakeGcloud(dir, sshd).install(state)`: it writes `dir/bin/gcloud` (put
`dir/bin` first on PATH) and a JSON state file the script reads and updates under a lock:

    {"project": P, "tpus": {zone: [node, ...]}, "instances": [instance, ...],
     "ssh": {user, port, identity_file, host_key}, "record": "argv.jsonl",
     "hang": ["list"], "delete": {NAME: "ok" | "not_found" | "fail" | "hang"}}

Emulated, as the real one behaves:
- `compute tpus tpu-vm list --zone=Z --filter=F --format=json`, `compute instances list
  --zones=Z,… --filter=F --format=json`: the filter terms `labels.K=V`, `name~REGEX` and
  `name=V`, joined by ` OR `; nodes named `projects/P/locations/Z/nodes/N`, instances
  with a zone URL; an item's `listed` fields replace what is printed (a hostile listing);
- `compute tpus tpu-vm ssh N --worker=I --zone=Z --dry-run`, `compute ssh N --zone=Z
  --dry-run`: the ssh command line gcloud would run, pointing at the loopback sshd, with
  a host-key alias it records in its own known-hosts file (as gcloud does);
- `compute ssh N --zone=Z [--command=C] [-- SSH_ARGS]` without `--dry-run`: runs that
  ssh as its child and stays alive as its parent until it exits;
- `… delete N --zone=Z --quiet`: removes it; "not found" (exit 1, the API's message),
  a failure (exit 1) or a hang, as the state says.
An unknown resource for ssh is "not found"; an unknown command is exit 2.
"""

import fcntl
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HANG_S = 3600.0


def main(argv: list[str]) -> int:
    state_path = Path(os.environ["FAKE_GCLOUD_STATE"])
    with open(state_path) as f:
        fcntl.flock(f, fcntl.LOCK_SH)  # a delete rewrites it under LOCK_EX
        state = json.load(f)
    with open(state["record"], "a") as record:
        record.write(json.dumps(argv) + "\n")
    words = [a for a in argv if not a.startswith("-")]
    flags = dict(_flag(a) for a in argv if a.startswith("--") and "=" in a)
    if words[:4] == ["compute", "tpus", "tpu-vm", "list"] or words[:3] == ["compute", "instances", "list"]:
        return _list(state, words, flags)
    if words[:4] == ["compute", "tpus", "tpu-vm", "ssh"] or words[:2] == ["compute", "ssh"]:
        return _ssh(state, state_path, argv, words, flags)
    if len(words) >= 2 and words[-2] == "delete":
        return _delete(state_path, words, flags)
    print(f"ERROR: (gcloud) Invalid choice: {' '.join(words)!r}.", file=sys.stderr)
    return 2


def _flag(arg: str) -> tuple[str, str]:
    key, _, value = arg[2:].partition("=")
    return key, value


def _matches(item: dict[str, Any], name: str, expression: str) -> bool:
    for term in expression.split(" OR "):
        key, op, value = re.fullmatch(r"\s*([\w.-]+)\s*(=|~)\s*(\S+)\s*", term).groups()  # type: ignore[union-attr]
        if key.startswith("labels."):
            found = (item.get("labels") or {}).get(key[len("labels.") :])
            if found == value:
                return True
        elif key == "name" and (re.search(value, name) if op == "~" else name == value):
            return True
    return False


def _list(state: dict[str, Any], words: list[str], flags: dict[str, str]) -> int:
    if "list" in state.get("hang", []):
        time.sleep(HANG_S)
    expression = flags.get("filter", "")
    if words[1] == "tpus":
        zone = flags["zone"]
        nodes = state["tpus"].get(zone, [])
        out = [
            n | {"name": f"projects/{state['project']}/locations/{zone}/nodes/{n['name']}"} | n.get("listed", {})
            for n in nodes
            if _matches(n, n["name"], expression)
        ]
    else:
        zones = flags.get("zones", "").split(",")
        out = [
            i
            | {"zone": f"https://www.googleapis.com/compute/v1/projects/{state['project']}/zones/{i['zone']}"}
            | i.get("listed", {})
            for i in state["instances"]
            if i["zone"] in zones and _matches(i, i["name"], expression)
        ]
    print(json.dumps(out))
    return 0


def _find(state: dict[str, Any], words: list[str], flags: dict[str, str]) -> dict[str, Any] | None:
    name, zone = words[-1], flags.get("zone", "")
    if words[1] == "tpus":
        return next((n for n in state["tpus"].get(zone, []) if n["name"] == name), None)
    return next((i for i in state["instances"] if i["name"] == name and i["zone"] == zone), None)


def _ssh(state: dict[str, Any], state_path: Path, argv: list[str], words: list[str], flags: dict[str, str]) -> int:
    if "--" in argv:
        words = [a for a in argv[: argv.index("--")] if not a.startswith("-")]
    found = _find(state, words, flags)
    if found is None:
        print(f"ERROR: (gcloud.compute.ssh) Could not fetch resource: - The resource '{words[-1]}' was not found",
              file=sys.stderr)  # fmt: skip
        return 1
    ssh = state["ssh"]
    alias = f"{'tpu' if words[1] == 'tpus' else 'compute'}.{found['name']}-{flags.get('worker', '0')}"
    known_hosts = state_path.parent / "google_compute_known_hosts"
    with open(known_hosts, "a") as kh:
        kh.write(f"{alias} {ssh['host_key']}\n")
    command = ["/usr/bin/ssh", "-t", "-i", ssh["identity_file"], "-o", "CheckHostIP=no", "-o", "HashKnownHosts=no",
               "-o", f"HostKeyAlias={alias}", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
               "-o", f"UserKnownHostsFile={known_hosts}", "-p", str(ssh["port"]),
               f"{ssh['user']}@127.0.0.1"]  # fmt: skip
    if "--dry-run" in argv:
        print(shlex.join(command))
        return 0
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    remote = [flags["command"]] if "command" in flags else []
    # Like the real gcloud: ssh is our child, and we stay until it exits.
    return subprocess.call(["ssh", "-T", *command[2:-1], *extra, command[-1], *remote])


def _delete(state_path: Path, words: list[str], flags: dict[str, str]) -> int:
    with open(state_path, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        state = json.load(f)
        name = words[-1]
        behaviour = state.get("delete", {}).get(name, "ok")
        found = _find(state, words, flags)
        if behaviour == "ok" and found is not None:
            if words[1] == "tpus":
                state["tpus"][flags["zone"]].remove(found)
            else:
                state["instances"].remove(found)
            f.seek(0)
            f.truncate()
            json.dump(state, f)
    if behaviour == "hang":
        time.sleep(HANG_S)
    if behaviour == "fail":
        print(f"ERROR: (gcloud) PERMISSION_DENIED: cannot delete {name}", file=sys.stderr)
        return 1
    if behaviour == "not_found" or found is None:
        print(f"ERROR: (gcloud) NOT_FOUND: The resource '{name}' was not found", file=sys.stderr)
        return 1
    print(f"Deleted [{name}].", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
