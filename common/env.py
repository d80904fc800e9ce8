"""Environment variables that tie every process of a run together.

RUN_TAG is set in each child right after fork and inherited by every process it
execs, so the leak audit can find descendants that were re-parented away from us.
"""

RUN_TAG = "IRIS_SMOKE_RUN_ID"
CHILD_NAME = "IRIS_SMOKE_CHILD"
# Absolute deadline as Unix time, for exec'd programs that cannot share our monotonic clock
# (a remote `timeout` on a VM, for instance).
DEADLINE_UNIX = "IRIS_SMOKE_DEADLINE_UNIX"
