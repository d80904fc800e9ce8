"""The environment the local cluster, its VM hosts and their tasks run with: a short allowlist.

A task is arbitrary code from whoever can submit a job. Whatever the cluster inherits,
every task inherits, so the cluster starts from this list and never from the caller's
whole environment: a supervisor under systemd may hold `CREDENTIALS_DIRECTORY`,
`GOOGLE_APPLICATION_CREDENTIALS` or tokens, and none of them is the cluster's business.

What is kept, and why:
- PATH, HOME, USER, LOGNAME, LANG, LC_ALL, LC_CTYPE, TZ, TMPDIR: what any program expects;
- PYTHONPATH: how `python -m local_cluster` finds this package from a source checkout;
- the run's tags (run id and instance, deadline, kept marker): the leak audit finds every process of a
  run by its tag, and the cluster stops itself at the run's deadline;
- IRIS_SMOKE_LOG_FORMAT: the cluster's own event format.
"""

from collections.abc import Mapping

from common import env

KEPT = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH",
    env.RUN_TAG, env.RUN_INSTANCE, env.DEADLINE_UNIX, env.KEPT_CLUSTER, "IRIS_SMOKE_LOG_FORMAT",
})  # fmt: skip


def minimal_env(source: Mapping[str, str]) -> dict[str, str]:
    """Only the allowlisted variables of `source`."""
    return {k: v for k, v in source.items() if k in KEPT}
