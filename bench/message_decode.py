"""Reading a child's message into its type: this tree's codec beside the one at another commit.

    python bench/message_decode.py [--against REV] [--hosts 20] [--messages 200] [--runs 5]

The supervisor reads every child message through `common.jsonshape.from_json`. The codec
of commit REV (`git show REV:common/jsonshape.py`) and this tree's read the same HOSTS
message (`--hosts` entries, as discovery sends them) `--messages` times a run, the two codecs'
runs alternating so that a load that comes and goes weighs on both; prints the best run's time
per message for each and their ratio, as a table and then as one JSON document. REV defaults
to 745483c, before the codec cached each class's resolved annotations.
"""

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import jsonshape
from workers.hosts import Role
from workers.messages import HostEntry, HostsPart

REPO = Path(__file__).resolve().parents[1]


def codec_at(rev: str, tmp: Path) -> ModuleType:
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:common/jsonshape.py"],
                            check=True, capture_output=True, text=True).stdout  # fmt: skip
    path = tmp / "jsonshape_at_rev.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("jsonshape_at_rev", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def one_run(codec: ModuleType, message: HostsPart, body: object, messages: int) -> float:
    began = time.perf_counter()
    for _ in range(messages):
        assert codec.from_json(HostsPart, body) == message
    return (time.perf_counter() - began) / messages


def main() -> int:
    parser = argparse.ArgumentParser(prog="python bench/message_decode.py")
    parser.add_argument("--against", default="745483c", help="the commit whose codec to compare with")
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    hosts = tuple(HostEntry(f"vm-{i}", 0, Role.WORKER, "10.0.0.1", "z", "iris-worker") for i in range(args.hosts))
    message = HostsPart(hosts=hosts, listing=1)
    body = jsonshape.to_json(message)
    with tempfile.TemporaryDirectory() as tmp:
        old = codec_at(args.against, Path(tmp))
    runs = [(one_run(old, message, body, args.messages), one_run(jsonshape, message, body, args.messages))
            for _ in range(args.runs)]  # fmt: skip
    before, now = min(r[0] for r in runs), min(r[1] for r in runs)
    print(f"| codec | ms per message of {args.hosts} hosts |\n| --- | --- |")
    print(f"| {args.against} | {before * 1e3:.3f} |\n| this tree | {now * 1e3:.3f} |")
    print(f"ratio: {before / now:.1f}")
    figures = {"against": args.against, "hosts": args.hosts, "before_ms": before * 1e3, "now_ms": now * 1e3}
    print(json.dumps(figures | {"ratio": before / now}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
