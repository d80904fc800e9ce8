"""The daemon stays flat over many runs: no descriptor, memory or process leaks per run."""

from pathlib import Path

from tests.canary.daemon import FAKE_RUN, started

RUNS = 100
WARM_UP = 10  # imports, caches and the allocator settle over the first runs
RSS_GROWTH_MAX_BYTES = 1024 * 1024


def test_fds_and_rss_stay_flat_over_100_runs(tmp_path: Path) -> None:
    args = ("--interval", "0.05", "--keep-runs", "5", "--max-runs", str(RUNS), "--run-command", FAKE_RUN)
    with started(tmp_path, *args) as canary:
        # Each run also renders the history page in a child (about 0.5 s of Python start-up here).
        assert canary.wait_exit(180) == 0
        done = canary.find("run_completed")
        assert len(done) == RUNS
        assert all(e["leaked"] == 0 for e in done)
        fds = [e["daemon_fds"] for e in done]
        rss = [e["daemon_rss_bytes"] for e in done]
        assert fds[WARM_UP - 1] == fds[-1], fds
        growth = rss[-1] - rss[WARM_UP - 1]
        print(f"fds {fds[WARM_UP - 1]} -> {fds[-1]}; rss {rss[WARM_UP - 1]} -> {rss[-1]} ({growth:+d} bytes)")
        assert growth < RSS_GROWTH_MAX_BYTES, rss
        assert len([p for p in (canary.state_dir / "runs").iterdir() if p.is_dir()]) == 5
