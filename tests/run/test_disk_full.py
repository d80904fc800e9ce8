"""A full disk is reported, never a traceback or a hang."""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.helpers.supervisor_proc import run_argv, started

RUN_EXIT_S = 60.0


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs filled to the last block (root only; CI runs as root)."""
    mount = tmp_path / "full"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        with open(mount / "filler", "wb", buffering=0) as filler, pytest.raises(OSError, match="No space"):
            while True:
                filler.write(b"\0" * 4096)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_run_on_a_full_disk_reports_it_and_exits_3(tmp_path: Path, full_disk: Path) -> None:
    with started(run_argv("disk-full", full_disk), tmp_path, "disk-full") as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 3
        output = sup.output.read_text()
    assert "Traceback" not in output
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    [failed] = [e for e in events if e.get("event") == "verdict_write_failed"]
    assert failed["outcome"] == "error" and failed["error"] == "No space left on device"
    assert {"cluster_start_failed", "artefact_write_failed"} <= set(failed["failure_reasons"])
    assert any(e.get("event") == "log_sink_failed" for e in events), "the events file's failure is said once"


def test_a_child_that_hits_a_full_disk_exits_disk_full_without_a_traceback(tmp_path: Path) -> None:
    spec = {
        "run_id": "enospc", "run_dir": str(tmp_path / "runs" / "enospc"),
        "children": [{"name": "writer", "entrypoint": "tests.children:disk_full", "restart": {"mode": "never"}}],
    }  # fmt: skip
    path = tmp_path / "spec.json"
    path.write_bytes(orjson.dumps(spec))
    with started(["-m", "tests.helpers.supervise_specs", str(path)], tmp_path, "enospc") as sup:
        sup.wait_exit(RUN_EXIT_S)
        [exited] = sup.find("child_exited", child="writer")
        assert (exited["exit_code"], exited["reason"]) == (74, "disk_full")
        assert sup.find("child_disk_full") and not sup.find("child_crashed")
        assert "Traceback" not in sup.output.read_text()
