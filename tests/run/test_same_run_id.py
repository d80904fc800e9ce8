"""Two live runs given the same --run-id: each one's audit takes only its own processes."""

from pathlib import Path

from tests.helpers.supervisor_proc import run_argv, started

RUN_EXIT_S = 60.0
# The long run's task lasts until the test releases it (bounded), so it is surely alive while
# the short run ends and audits.
LINGERS = """\
[[tests]]
name = "lingers"
argv = ["sh", "-c", "echo lingering; for i in $(seq 300); do [ -e {release} ] && exit 0; sleep 0.1; done; exit 1"]
"""


def test_a_run_ending_beside_another_with_its_run_id_leaves_the_other_alone(tmp_path: Path) -> None:
    """Same run id, other prefixes and log dirs: the first to end must not audit the other's processes
    (its cluster, VM hosts, followers and task) as its own leaks."""
    config = tmp_path / "lingers.toml"
    release = tmp_path / "release"
    config.write_text(LINGERS.format(release=release))
    long_argv = run_argv("twin", tmp_path / "long", "--prefix", "twin-long", "--config", str(config),
                         "--tests", "lingers", "--timeout", "60")  # fmt: skip
    short_argv = run_argv("twin", tmp_path / "short", "--prefix", "twin-short", "--tests", "simple")
    (tmp_path / "short").mkdir()
    with started(long_argv, tmp_path, "twin", log_dir=tmp_path / "long") as long_run:
        long_run.wait_event("job_launched", test="lingers", timeout_s=30.0)
        with started(short_argv, tmp_path / "short", "twin", log_dir=tmp_path / "short") as short_run:
            assert short_run.wait_exit(RUN_EXIT_S) == 0, short_run.output.read_text()[-3000:]
            assert long_run.popen.poll() is None, "the long run ended before the short one's audit"
        release.touch()
        assert long_run.wait_exit(RUN_EXIT_S) == 0, long_run.output.read_text()[-3000:]
        for run in (short_run, long_run):
            assert run.find("process_leaked") == []
            assert run.results()["processes"]["leaked"] == 0
