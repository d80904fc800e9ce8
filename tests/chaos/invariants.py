"""What every fault case must leave behind, checked in one place.

- the exit code and, when the supervisor lived to write it, the same outcome in
  `results.json`, with an audit that found no leak and no zombie;
- no process of the run left: none carrying its tag (what was exec'd), none of the
  children it forked (by their pids from `child_started`), and no zombie among this
  test process's children (pytest is a subreaper: whatever the run left unreaped,
  or orphaned, comes to it);
- every line of every `*.jsonl` in the run directory whole (it parses, the file ends
  with a newline), and every stream file's `seq` unique.
"""

import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from tests.chaos.harness import ChaosRun
from tests.helpers import processes
from tests.helpers.waiting import wait_for

# A SIGKILLed supervisor's children stop by themselves: the slowest, the cluster child,
# has half of the cluster's 8 s grace, then exits hard.
ORPHANS_GONE_S = 10.0


def assert_clean_end(
    run: ChaosRun, exit_code: int, outcome: str | None, *reasons: str, cluster_killed: bool = False
) -> dict[str, Any]:
    """The run ended with `exit_code` and `outcome` (None: no verdict expected, the
    supervisor was killed), its failure reasons include `reasons`, and nothing is left.
    Unless the case KILLed it itself, the embedded cluster was stopped, never KILLed:
    a KILLed cluster cannot stop its VM hosts and tasks."""
    sup = run.sup
    code = sup.wait_exit(60)
    assert code == exit_code, f"exit {code}, wanted {exit_code}:\n{sup.output.read_text()[-3000:]}"
    results: dict[str, Any] = {}
    if outcome is not None:
        results = sup.results()
        assert (results["outcome"], results["exit_code"]) == (outcome, exit_code), results["failure_reasons"]
        assert set(reasons) <= set(results["failure_reasons"]), results["failure_reasons"]
        audit = results["processes"]
        assert audit["leaked"] == 0 and audit["zombies"] == 0, audit
        assert audit["killed_at_stop"] == 0, "every child stopped within its grace"
        assert audit["grpc_imported"] is False
        assert_no_zombie(run)
    assert_nothing_left(run)
    if not cluster_killed:
        killed = [e for e in sup.find("cluster_stopped") if e["exit_code"] == -signal.SIGKILL]
        assert not killed, f"the cluster was KILLed at its stop: {killed}"
    assert_jsonl_whole(sup.run_dir)
    assert_stream_seq_unique(sup.run_dir)
    return results


def assert_nothing_left(run: ChaosRun, timeout_s: float = ORPHANS_GONE_S) -> None:
    """Every process of the run gone within `timeout_s`; the orphans it left us reaped."""
    pids = run.sup.child_pids()

    def left() -> list[str]:
        processes.reap_zombie_children()
        tagged = processes.describe(processes.with_run_tag(run.sup.run_id)).splitlines()
        return tagged + [f"{pid} (forked child)" for pid in processes.alive_pids(pids)]

    try:
        wait_for(lambda: not left(), timeout_s, "every process of the run to exit")
    except AssertionError:
        raise AssertionError(f"left behind after {timeout_s} s: {left()}") from None


def assert_no_zombie(run: ChaosRun) -> None:
    """No process the run started is left dead and unreaped to us (its reaper was the supervisor).
    Only the run's: pytest is the subreaper of everything a test session starts."""
    zombies = processes.zombies_since(run.started_at)
    described = processes.describe_zombies(zombies, run.started_at)
    assert not zombies, f"zombies the run left to the supervisor's parent: {described}"


def assert_jsonl_whole(run_dir: Path) -> None:
    files = sorted(run_dir.rglob("*.jsonl"))
    assert files, f"no JSONL in {run_dir}"
    for path in files:
        data = path.read_bytes()
        assert not data or data.endswith(b"\n"), f"{path}: last line cut"
        for number, line in enumerate(data.splitlines(), 1):
            try:
                json.loads(line)
            except ValueError:
                raise AssertionError(f"{path}:{number} is not whole JSON: {line[:200]!r}") from None


def assert_stream_seq_unique(run_dir: Path) -> None:
    for path in sorted((run_dir / "logs").rglob("*.jsonl")):
        seqs = Counter(json.loads(line)["seq"] for line in path.read_bytes().splitlines())
        repeated = [seq for seq, n in seqs.items() if n > 1]
        assert not repeated, f"{path}: seq repeated {repeated[:10]}"
