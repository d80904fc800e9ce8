"""`scripts/gen_protos.py --check`, run on a copy of the tree so the real one is never touched."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK_TIMEOUT_S = 120


def _copy_tree(tmp_path: Path) -> Path:
    for part in ("scripts", "protos", "iris_smoke_api"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(root / "scripts" / "gen_protos.py"), "--check"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, check=False)


def test_check_fails_when_the_generated_states_module_is_stale(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    states = root / "iris_smoke_api" / "v1" / "states.py"
    states.write_text(states.read_text().replace('RUNNING = "running"', 'RUNNING = "run"', 1))
    result = _check(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "stale generated files in iris_smoke_api/: v1/states.py" in result.stderr


def test_states_module_follows_a_new_proto_enum_value(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    proto = root / "protos" / "iris_smoke_api" / "v1" / "controller.proto"
    last = "  VM_STATE_PREEMPTED = 9;\n"
    proto.write_text(proto.read_text().replace(last, last + "  VM_STATE_PARKED = 10;  // new\n"))
    subprocess.run([sys.executable, str(root / "scripts" / "gen_protos.py")], check=True, timeout=CHECK_TIMEOUT_S)
    states = (root / "iris_smoke_api" / "v1" / "states.py").read_text()
    assert "    PARKED = 10  # new\n" in states
    assert '    PARKED = "parked"  # new\n' in states
    assert _check(root).returncode == 0
