"""On an 80-column terminal the progress line never wraps, warnings start at the margin,
and the run ends with the verdict line."""

import re
import uuid
from pathlib import Path

from tests.helpers.terminal import run_on_a_terminal

ERASE = "\r\x1b[K"


def test_progress_fits_80_columns_and_warnings_start_fresh(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('[run]\ntests = ["simple", "concurrent"]\n[[tests]]\nname = "broken"\nargv = ["false"]\n')
    run_id = f"w80-{uuid.uuid4().hex[:8]}"
    args = [
        "run",
        "--config",
        str(config),
        "--run-id",
        run_id,
        "--prefix",
        f"smoke-{uuid.uuid4().hex[:8]}",
        "--log-dir",
        str(tmp_path),
    ]
    code, text = run_on_a_terminal(args, {"COLUMNS": "80", "LINES": "24"})
    assert code == 1
    # The pty turns \n into \r\n. Each progress draw is what follows an erase up to the next one.
    draws = [part.split("\r")[0] for part in text.split(ERASE)[1:]]
    progress = [d for d in draws if d.startswith("[")]
    assert progress, text
    assert all(len(d) <= 79 for d in progress), max(progress, key=len)
    assert any(d.endswith("…") for d in progress), "a long line is cut with an ellipsis"
    warnings = [m.start() for m in re.finditer(r"\[warning", text)]
    assert warnings, text
    for at in warnings:
        line_start = text.rfind("\n", 0, at) + 1
        before = text[line_start:at]
        assert ERASE in before, f"a warning erases the progress line first: {before!r}"
        assert not before.rsplit(ERASE, 1)[1].startswith("["), "no progress text left before a warning"
    last = text.strip().splitlines()[-1].replace("\x1b[K", "")
    assert last.startswith("iris-smoke: FAILED (exit 1): failed tests: broken;"), last
