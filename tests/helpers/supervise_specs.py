"""Run the real supervisor over children described in JSON: `python -m tests.helpers.supervise_specs SPEC`.

Lets a test give the supervisor children with behaviours the product never has (one
that ignores SIGTERM, one that crashes) while everything else is the production path.
"""

import sys
from pathlib import Path

import orjson

from common import logs
from common.deadline import Deadline
from supervisor.children import ChildSpec
from supervisor.demo import DemoWork
from supervisor.restart import RestartMode, RestartPolicy
from supervisor.run import supervised
from workers.child_args import DemoStreamArgs

DEMO_ENTRYPOINT = "workers.demo_stream:main"


def main(spec_path: str) -> int:
    spec = orjson.loads(Path(spec_path).read_bytes())
    deadline = Deadline.after(spec.get("timeout_s", 60))
    run_dir = Path(spec["run_dir"])
    run_dir.mkdir(parents=True)
    logs.configure("supervisor", spec["run_id"], run_dir / "events.jsonl", stdout_format="json")
    children = [
        ChildSpec(
            name=c["name"],
            role=c.get("role", "test"),
            entrypoint=c["entrypoint"],
            args=DemoStreamArgs(**c.get("args", {})) if c["entrypoint"] == DEMO_ENTRYPOINT else c.get("args", {}),
            restart=RestartPolicy(
                **{
                    **c.get("restart", {}),
                    "mode": RestartMode(c.get("restart", {}).get("mode", "on_failure")),
                }
            ),
            critical=c.get("critical", False),
        )
        for c in spec["children"]
    ]
    verdict = supervised(
        lambda sup: DemoWork(sup, children),
        spec["run_id"],
        run_dir,
        deadline,
        stop_grace_s=spec.get("stop_grace_s", 2.0),
        log_level="info",
    )
    return int(verdict.exit_code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
