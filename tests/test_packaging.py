"""The wheel, installed into an environment of its own as pipx does: it is pure Python (one
wheel for every platform, no compiler at install), the command works, the share data is
there, and a `supervisor` package from another distribution is refused clearly."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers.supervisor_proc import REPO_ROOT

SHARE = ("systemd/iris-smoke-canary@.service", "systemd/canary.example.toml", "monitoring/alerts.yml",
         "monitoring/dashboard.json", "doc/results.schema.json",
         "systemd/examples/remote-iris/remote-iris.run.toml", "systemd/examples/remote-iris/ssh_config",
         "systemd/examples/remote-iris/iris-smoke-canary@remote-iris.service.d/remote-iris.conf",
         "systemd/examples/ssh-key/iris-smoke-canary.service.d/ssh-key.conf")  # fmt: skip


def _run(
    argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 240
) -> "subprocess.CompletedProcess[str]":
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | (env or {})
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=environ, check=False)


@pytest.mark.timeout(420)
def test_the_wheel_installs_into_a_fresh_environment_with_its_share_data(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO_ROOT)])
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("iris_smoke-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    assert not any(name.endswith((".so", ".c")) for name in zipfile.ZipFile(wheel).namelist())
    # As pipx does: a venv without pip of its own (ensurepip costs seconds), filled by a shared pip.
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(venv)]).returncode == 0
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    installed = _run([*pip, "install", "-q", "--no-compile", "--disable-pip-version-check", str(wheel)])
    assert installed.returncode == 0, installed.stderr[-3000:]

    helped = _run([str(venv / "bin" / "iris-smoke"), "--help"], timeout=60)
    assert helped.returncode == 0 and "canary" in helped.stdout, helped.stderr
    for name in SHARE:
        assert (venv / "share" / "iris-smoke" / name).is_file(), name

    # supervisord's package first on the path: a clear refusal naming the fix, not a traceback.
    shadow = tmp_path / "shadow" / "supervisor"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("# supervisord\n")
    refused = _run(
        [
            str(
                venv / "bin" / "iris-smoke",
            ),
            "--help",
        ],
        env={"PYTHONPATH": str(shadow.parent)},
        timeout=60,
    )
    assert refused.returncode == 3, refused.stderr
    assert "`import supervisor` resolves to" in refused.stderr and "pipx install iris-smoke" in refused.stderr
    assert "Traceback" not in refused.stderr
