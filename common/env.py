"""Environment variables that tie every process of a run together, and the ones no program may inherit.

RUN_TAG is set in each child right after fork and inherited by every process it
execs, so the leak audit can find descendants that were re-parented away from us.
"""

from collections.abc import Mapping

RUN_TAG = "IRIS_SMOKE_RUN_ID"
# Which live run, beside which run id: two runs may be given the same --run-id, and one
# run's audit must never take the other's processes for its own leaks. Random per run.
RUN_INSTANCE = "IRIS_SMOKE_RUN_INSTANCE"
CHILD_NAME = "IRIS_SMOKE_CHILD"
# Absolute deadline as Unix time, for exec'd programs that cannot share our monotonic clock
# (a remote `timeout` on a VM, for instance).
DEADLINE_UNIX = "IRIS_SMOKE_DEADLINE_UNIX"
# Marks a process started to outlive its run (`iris-smoke run --keep`): the supervisor's
# final stop and audit leave it, and everything that inherits this variable, alone.
KEPT_CLUSTER = "IRIS_SMOKE_KEPT_CLUSTER"

# The names of environment variables that hold a secret (`[iris] token_env`). The supervisor
# names them once, before it forks, so every child knows them; a program a child starts
# inherits them only where it sends requests itself (the log-service follower).
_secret_names: set[str] = set()


def hold_secret(name: str) -> None:
    if name:
        _secret_names.add(name)


def without_secrets(environ: Mapping[str, str], keep: frozenset[str] = frozenset()) -> dict[str, str]:
    """`environ` less every secret variable not in `keep`: what ssh, gcloud or a tunnel inherit."""
    return {k: v for k, v in environ.items() if k not in _secret_names or k in keep}
