"""A real Iris behind a hostile front (tests/helpers/hostile_controller.py --upstream): every
call is the real one except ListWorkers, which streams a listing without end. The run, with its
real monitors, tests and log streams, ends at once with `reply_too_large` (exit 3), its
processes under the memory bound, nothing of it left behind."""

import time
import uuid
from pathlib import Path

from tests.helpers import processes
from tests.helpers.hostile_controller import LIST_WORKERS, running
from tests.helpers.iris import running_iris_cluster
from tests.helpers.supervisor_proc import run_argv, started
from tests.helpers.tree_memory import MIB, TreeMemory

DEADLINE_S = 120
END_S = 30.0
PSS_BOUND = 300 * MIB


def test_an_endless_listing_from_a_real_iris_front_ends_the_run_with_reply_too_large(tmp_path: Path) -> None:
    run_id = f"hostile-iris-{uuid.uuid4().hex[:6]}"
    with running_iris_cluster(tmp_path) as cluster, running(f"{LIST_WORKERS}=endless", upstream=cluster.url) as url:
        argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", url, "--tests", "simple",
                        "--timeout", str(DEADLINE_S))  # fmt: skip
        with started(argv, tmp_path, run_id) as sup, TreeMemory(sup.popen.pid) as memory:
            began = time.monotonic()
            code = sup.wait_exit(DEADLINE_S + 60)
            took_s = time.monotonic() - began
        assert code == 3, sup.output.read_text()[-3000:]
        results = sup.results()
        assert results["failure_reasons"][0] == "reply_too_large", results["failure_reasons"]
        assert results["reply_too_large"]["method"] == LIST_WORKERS
        assert took_s < END_S, f"the run took {took_s:.1f} s of its {DEADLINE_S} s deadline"
        assert memory.peak_pss < PSS_BOUND, memory.describe()
        assert results["processes"]["leaked"] == 0 and results["processes"]["zombies"] == 0
        assert processes.with_run_tag(run_id) == []
