"""Environment variables that tie every process of a run together.

RUN_TAG is set in each child right after fork and inherited by every process it
execs, so the leak audit can find descendants that were re-parented away from us.
"""

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
