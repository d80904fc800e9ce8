"""A real run's directory: private modes, and task output that cannot break summary.md."""

import re
import stat
from pathlib import Path

from tests.helpers.supervisor_proc import run_argv, started

# TOML unescapes once, printf once. The task prints a fence of its own, an ANSI colour sequence and a bell, then fails.
_HOSTILE_RUN = r"""
[run]
tests = []
[[tests]]
name = "hostile"
argv = ["sh", "-c", "printf 'before\\n````\\n\\033[31mred\\033[0m\\a\\nafter-the-fence\\n'; exit 1"]
"""
_RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def test_a_real_runs_directory_is_private_and_its_summary_is_escaped(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(_HOSTILE_RUN)
    argv = run_argv("hostile", tmp_path / "runs", "--config", str(config), "--timeout", "60")
    with started(argv, tmp_path, "hostile") as sup:
        assert sup.wait_exit(60) == 1
        summary = (sup.run_dir / "summary.md").read_text()
        paths = [sup.run_dir, *sup.run_dir.rglob("*")]
        modes = {p: stat.S_IMODE(p.lstat().st_mode) for p in paths if not p.is_symlink() and not p.is_socket()}
    assert modes[sup.run_dir] == 0o750
    assert modes[sup.run_dir / "results.json"] == 0o640 and modes[sup.run_dir / "events.jsonl"] == 0o640
    open_to_others = {str(p): oct(m) for p, m in modes.items() if m & 0o027}
    assert not open_to_others, "no group write, nothing for others"
    assert not _RAW_CONTROL.search(summary), "no raw control character reaches a terminal"
    assert "\\x1b[31mred" in summary
    block = summary.split("### hostile: task 0 (last lines)\n\n", 1)[1]
    fence = block.split("\n", 1)[0]
    assert re.fullmatch("`{5,}", fence), "a fence longer than the task's own ````"
    inside = block.split("\n" + fence + "\n", 1)[0]
    assert "after-the-fence" in inside, "the task's fence did not close ours"
