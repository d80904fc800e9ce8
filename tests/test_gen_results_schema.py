"""`scripts/gen_results_schema.py --check`, run on a copy of the docs so the real file is never touched."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK_TIMEOUT_S = 60


def _copy_tree(tmp_path: Path) -> Path:
    for part in ("scripts", "docs"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(root / "scripts" / "gen_results_schema.py"), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, check=False, cwd=ROOT)


def test_the_committed_schema_is_the_generated_one() -> None:
    result = _run(ROOT, "--check")
    assert result.returncode == 0, result.stderr


def test_check_fails_when_the_schema_was_edited_by_hand_and_regenerating_mends_it(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    schema = root / "docs" / "results.schema.json"
    schema.write_text(schema.read_text().replace('"passed"', '"passd"', 1))
    stale = _run(root, "--check")
    assert stale.returncode == 1 and "stale docs/results.schema.json" in stale.stderr, stale.stderr
    assert _run(root).returncode == 0
    assert _run(root, "--check").returncode == 0
    assert schema.read_text() == (ROOT / "docs" / "results.schema.json").read_text()
