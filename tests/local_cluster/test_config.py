"""Config validation: a bad value is an error naming its field and the fix, exit code 2."""

import subprocess
import sys

import pytest

from common.errors import ConfigError
from local_cluster.config import default_config_text, parse_config
from local_cluster.states import AcceleratorType
from tests.helpers.cluster import REPO_ROOT

GROUP = """
[[scale_groups]]
name = "cpu"
accelerator_type = "cpu"
"""


def test_default_config_has_a_cpu_group_and_a_v5litepod_16_group() -> None:
    config = parse_config(default_config_text(), "default")
    cpu, spot, tpu = config.scale_groups
    assert (cpu.accelerator_type, cpu.min_slices) == (AcceleratorType.CPU, 1)
    # Two regions: the preemptible CPU group is in its own.
    assert (spot.accelerator_type, spot.preemptible, spot.region) == (AcceleratorType.CPU, True, "local-b")
    assert config.cluster.region == "local-a"
    assert (tpu.accelerator_variant, tpu.hosts_per_slice, tpu.min_slices, tpu.max_slices) == ("v5litepod-16", 4, 0, 2)
    assert tpu.boot_delay_s <= 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("min_slices = 2\nmax_slices = 1", "scale_groups[1].max_slices: must be >= min_slices (2), got 1"),
        ("boot_delay_s = -1", "scale_groups[1].boot_delay_s: must be >= 0, got -1"),
        (
            'boot_delay_s = "fast"',
            "scale_groups[1].boot_delay_s: must be a duration like 90, 90s, 10m or 1h, got 'fast'",
        ),
        ("hosts_per_slice = 0", "scale_groups[1].hosts_per_slice: must be an integer from 1 to 100000, got 0"),
        ("boot_dely_s = 1", "scale_groups[1].boot_dely_s: unknown key"),
        ("[scale_groups.fault]\nboot_failure_probability = 2", "scale_groups[1].fault.boot_failure_probability"),
    ],
)
def test_bad_group_values_name_the_field(extra: str, message: str) -> None:
    text = GROUP + GROUP.replace('"cpu"\n', '"cpu2"\n', 1) + extra
    with pytest.raises(ConfigError) as err:
        parse_config(text, "test")
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "scale_groups: at least one [[scale_groups]] table is required"),
        (GROUP + GROUP, "scale_groups[1].name: duplicate group name 'cpu'"),
        (GROUP.replace('accelerator_type = "cpu"', 'accelerator_type = "tpu"'), "scale_groups[0].accelerator_variant"),
        (GROUP.replace('"cpu"\n', '"CPU!"\n', 1), "scale_groups[0].name: must match"),
        (
            "[cluster]\nheartbeat_timeout_s = 0.05\n" + GROUP,
            "cluster.heartbeat_timeout_s: must be > heartbeat_interval_s",
        ),
        ("[[scale_groups]\n", "not valid TOML"),
    ],
)
def test_bad_config_files_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "test")
    assert message in str(err.value)


def test_cli_reports_a_bad_config_with_exit_2_and_no_traceback(tmp_path: object) -> None:
    config = tmp_path / "bad.toml"  # type: ignore[operator]
    config.write_text(GROUP + "min_slices = 3\nmax_slices = 2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "local_cluster", "--state-dir", str(tmp_path), "--config", str(config)],
        capture_output=True, text=True, timeout=30, cwd=REPO_ROOT,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "local-cluster: config error: scale_groups[0].max_slices: must be >= min_slices (3), got 2"
    )
    assert proc.stdout == ""
