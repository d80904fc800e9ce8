"""On a terminal the run draws one live progress line; JSON events stay in events.jsonl."""

from pathlib import Path

from tests.helpers.terminal import run_on_a_terminal


def test_a_terminal_gets_a_progress_line_and_the_verdict(tmp_path: Path) -> None:
    code, text = run_on_a_terminal(["run", "--run-id", "tty", "--log-dir", str(tmp_path), "--tests", "simple"])
    assert code == 0
    assert "\r\x1b[K" in text and "streams" in text and "simple=" in text
    assert "PASSED (exit 0): 1/1 tests passed" in text
    assert '"event":"child_started"' not in text, "info events stay off the terminal"
    assert (tmp_path / "tty" / "events.jsonl").read_text().count("child_started") >= 5
