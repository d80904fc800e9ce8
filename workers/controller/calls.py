"""What every call of both controller adapters (`grpc_api`, `connect_api`) shares: its time
limit, and the refusal to touch a job outside the run's root. Here, not in `api` (which opens
the adapters), so that neither adapter imports the module that imports it."""

from common.deadline import Deadline
from workers.controller.model import ControllerError, ErrorCode

# One call against a healthy controller takes milliseconds; 10 s means it is wedged.
RPC_TIMEOUT_S = 10.0


def not_ours(method: str, job_id: str, prefix: str) -> ControllerError:
    """The refusal to act on a job outside this run's root (someone else's on a shared cluster)."""
    return ControllerError(ErrorCode.PERMISSION_DENIED, method, f"job {job_id!r} is not under this run's {prefix!r}")


def rpc_timeout(deadline: Deadline, limit_s: float = RPC_TIMEOUT_S) -> float:
    """The timeout for one call: the smaller of `limit_s` and the run's time left (never 0)."""
    return max(0.01, min(limit_s, deadline.remaining()))
