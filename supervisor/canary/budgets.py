"""Time budgets must nest, or systemd kills the daemon in the middle of a cleanup.

The chain, innermost first (see docs/systemd.md):
- the run stops its children with a grace of `supervisor.arbiter.STOP_GRACE_S` (2 s),
  then KILLs, reaps and audits;
- the daemon gives a run that many seconds and more: `cleanup_budget` after forwarding
  SIGTERM, then it KILLs what is left and audits (`STOP_MARGIN_S` covers that);
- systemd gives the daemon `TimeoutStopSec` after SIGTERM, then SIGKILLs the whole
  cgroup (KillMode=mixed). systemd does not tell a service its TimeoutStopSec, so the
  unit passes it as `IRIS_SMOKE_TIMEOUT_STOP_SEC` (or `--unit-timeout-stop`).
A run that cannot finish inside the interval is not an error, only a skipped slot.
"""

from dataclasses import dataclass, field

from supervisor.arbiter import STOP_GRACE_S
from supervisor.canary.config import CanaryConfig

# After the cleanup budget: KILL the run's group and tagged leftovers, wait for them
# (common.processes.KILL_WAIT_S, 1 s), audit, write metrics; 5 s covers it on a busy host.
STOP_MARGIN_S = 5.0


@dataclass(frozen=True)
class BudgetCheck:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check(config: CanaryConfig, child_stop_grace_s: float = STOP_GRACE_S) -> BudgetCheck:
    result = BudgetCheck()
    cleanup = config.cleanup_budget_s
    if cleanup <= child_stop_grace_s:
        result.errors.append(
            f"cleanup budget ({cleanup:g} s, --cleanup-budget) must be above the run's child stop "
            f"grace ({child_stop_grace_s:g} s): the run needs the grace, then time to KILL and audit"
        )
    stop = config.unit_timeout_stop_s
    if stop is not None and cleanup + STOP_MARGIN_S > stop:
        result.errors.append(
            f"cleanup budget ({cleanup:g} s, --cleanup-budget) plus {STOP_MARGIN_S:g} s to kill and audit "
            f"must fit in the unit's TimeoutStopSec ({stop:g} s, --unit-timeout-stop or "
            "IRIS_SMOKE_TIMEOUT_STOP_SEC): raise TimeoutStopSec or lower the cleanup budget"
        )
    for probe in config.schedule:
        timeout = config.timeout_of(probe)
        if timeout + cleanup >= probe.interval_s:
            result.warnings.append(
                f"probe {probe.name}: run timeout ({timeout:g} s) + cleanup budget ({cleanup:g} s) is not below "
                f"the interval ({probe.interval_s:g} s): a run that uses its whole budget will skip the next slot"
            )
    return result
