"""write_atomically in a directory someone else can write: planted names are never followed."""

import os
from pathlib import Path

import pytest

from common import files
from common.files import write_atomically


def test_a_symlink_planted_at_every_pid_named_temporary_is_never_followed(tmp_path: Path) -> None:
    """The old name was `.<name>.<pid>.tmp`, opened O_CREAT|O_TRUNC: a symlink there overwrote its target."""
    victim = tmp_path / "authorized_keys"
    victim.write_text("the user's own key\n")
    shared = tmp_path / "copied-artefact"
    shared.mkdir()
    target = shared / "summary.md"
    for pid in range(max(1, os.getpid() - 1000), os.getpid() + 1000):
        (shared / f".summary.md.{pid}.tmp").symlink_to(victim)
    write_atomically(target, b"the report\n")
    assert victim.read_text() == "the user's own key\n"
    assert target.read_bytes() == b"the report\n" and not target.is_symlink()
    leftovers = [p.name for p in shared.iterdir() if not p.is_symlink() and p != target]
    assert leftovers == []


def test_a_taken_random_name_is_drawn_again_and_never_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    draws = iter(["aaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"])
    monkeypatch.setattr(files.secrets, "token_hex", lambda _n: next(draws))
    (tmp_path / ".out.aaaaaaaaaaaaaaaa.tmp").symlink_to(victim)
    write_atomically(tmp_path / "out", b"new\n")
    assert (tmp_path / "out").read_bytes() == b"new\n" and victim.read_text() == "keep\n"


def test_no_free_name_is_an_error_and_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files.secrets, "token_hex", lambda _n: "cccccccccccccccc")
    (tmp_path / ".out.cccccccccccccccc.tmp").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        write_atomically(tmp_path / "out", b"new\n")
    assert not (tmp_path / "out").exists() and not (tmp_path / "elsewhere").exists()
