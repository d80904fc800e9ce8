"""What a gcloud listing can make the cleanup delete: only names validated whole, and every
slice it lists, however many hosts it has. Through the real cleanup child and the fake gcloud."""

import os
import uuid
from pathlib import Path

import pytest

from tests.helpers.fake_gcloud_env import FakeGcloud
from tests.helpers.forked import ForkedChild, run_to_end
from workers.child_args import GcpCleanupArgs
from workers.gcp.settings import GcpSettings

PROJECT, ZONE = "proj-1", "zone-a"
CLEANUP_S = 30.0


def _cleanup(tmp_path: Path, prefix: str) -> ForkedChild:
    settings = GcpSettings(project=PROJECT, zones=(ZONE,), label_prefix=prefix, call_timeout_s=20, delete_timeout_s=20)
    return run_to_end("workers.gcp.cleanup:main", GcpCleanupArgs(settings), tmp_path / "run", CLEANUP_S,
                      name="cleanup", role="cleanup")  # fmt: skip


def _deletes(fake: FakeGcloud) -> list[list[str]]:
    return [r for r in fake.records() if "delete" in r]


def test_names_and_zones_are_validated_whole_so_no_path_reaches_a_delete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`nodes/../../etc` was a delete of `etc`; a zone URL ending `../../etc` was `--zone=etc`."""
    prefix = f"inv{uuid.uuid4().hex[:6]}"
    managed = {f"{prefix}-managed": "true"}
    fake = FakeGcloud.install(tmp_path / "gcloud", None, PROJECT, ZONE)
    fake.add_tpu(f"{prefix}-tpu-0", hosts=1, labels=managed)
    fake.add_tpu("a", 1, managed, listed={"name": f"projects/{PROJECT}/locations/{ZONE}/nodes/../../etc"})
    fake.add_tpu("b", 1, managed, listed={"name": f"projects/{PROJECT}/locations/zone-b/nodes/{prefix}-x"})
    fake.add_tpu("c", 1, managed, listed={"name": "etc/passwd/x/etc"})
    fake.add_instance(f"{prefix}-cpu-0", managed)
    url = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/zones"
    fake.add_instance(f"{prefix}-cpu-1", managed, listed={"zone": f"{url}/../../etc"})
    fake.add_instance(f"{prefix}-cpu-2", managed, listed={"zone": "../../etc"})
    fake.add_instance(f"{prefix}-cpu-3", managed, listed={"zone": f"{url}/zone-b"})
    fake.add_instance(f"{prefix}-cpu-4", managed, listed={"name": f"x/../{prefix}-cpu-4"})
    monkeypatch.setenv("PATH", f"{fake.bin_dir}:{os.environ['PATH']}")

    child = _cleanup(tmp_path, prefix)

    assert child.exit_code == 0, child.events_tail()
    for argv in fake.records():
        assert not any("etc" in word or ".." in word or "zone-b" in word for word in argv), argv
    deleted = sorted(r[r.index("delete") + 1] for r in _deletes(fake))
    assert deleted == [f"{prefix}-cpu-0", f"{prefix}-tpu-0"]
    said = child.events("hosts_rejected")
    assert said, "the refused names were not said"
    assert all(e["count"] == 7 for e in said), said  # once per inventory, never once per name
    assert said[0]["reasons"] == {"invalid_name": 1, "not_a_resource_path": 4, "zone_not_listed": 2}, said[0]
    assert said[0]["fields"] == {"instance name": 1, "tpu name": 3, "zone": 3}, said[0]


def test_a_slice_of_more_than_1024_hosts_is_reported_and_still_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It used to fall out of the inventory, so cleanup never saw it: a leak."""
    prefix = f"big{uuid.uuid4().hex[:6]}"
    managed = {f"{prefix}-managed": "true"}
    fake = FakeGcloud.install(tmp_path / "gcloud", None, PROJECT, ZONE)
    fake.add_tpu(f"{prefix}-huge", hosts=0, labels=managed, accelerator="v4-16384")  # 2,048 hosts
    fake.add_tpu(f"{prefix}-tpu-0", hosts=4, labels=managed)
    monkeypatch.setenv("PATH", f"{fake.bin_dir}:{os.environ['PATH']}")

    child = _cleanup(tmp_path, prefix)

    assert child.exit_code == 0, child.events_tail()
    assert sorted(r[r.index("delete") + 1] for r in _deletes(fake)) == [f"{prefix}-huge", f"{prefix}-tpu-0"]
    [oversized] = child.events("slice_oversized")
    assert (oversized["vm"], oversized["zone"], oversized["hosts"], oversized["max_hosts"]) == (
        f"{prefix}-huge",
        ZONE,
        2048,
        1024,
    )
    assert fake.state()["tpus"][ZONE] == [], "both slices are gone"
