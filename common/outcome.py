"""Outcomes, failure reasons and exit codes: the run's verdict as enums.

Values are strings (or ints for exit codes) so they serialise straight into JSON.
"""

import enum
import signal


class ExitCode(enum.IntEnum):
    PASSED = 0
    TEST_FAILED = 1
    USAGE = 2
    INFRA = 3
    TIMEOUT = 124
    # 128 + signal number, as a shell reports a process ended by that signal.
    INTERRUPTED_SIGINT = 128 + signal.SIGINT
    INTERRUPTED_SIGTERM = 128 + signal.SIGTERM


class Outcome(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ERROR = "error"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # a test the cluster cannot serve; carries its reason, never a failure


# A test that did not run is no failure: skipped (the cluster cannot serve it) or cancelled
# (the run was stopped by a signal, SIGTERM or SIGINT, before the test finished).
NOT_RUN = (Outcome.SKIPPED, Outcome.CANCELLED)


class FailureReason(enum.StrEnum):
    TEST_FAILED = "test_failed"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    CRITICAL_CHILD_FAILED = "critical_child_failed"
    PROCESS_LEAK = "process_leak"
    ZOMBIE_LEFT = "zombie_left"
    SIGTERM = "sigterm"
    SIGINT = "sigint"
    CLUSTER_START_FAILED = "cluster_start_failed"
    CONTROLLER_UNREACHABLE = "controller_unreachable"
    INTERNAL_ERROR = "internal_error"
    ARTEFACT_WRITE_FAILED = "artefact_write_failed"
    # The controller does not speak the API we know (a method it lacks, a field missing).
    IRIS_API_MISMATCH = "iris_api_mismatch"
    # The controller refused our own calls (unauthenticated, permission_denied): a bad token.
    CONTROLLER_UNAUTHENTICATED = "controller_unauthenticated"
    # A controller reply that began and did not end within its call's time, or was longer than
    # `[iris] max_reply_bytes`: a broken or hostile controller (workers/controller/bounded.py).
    CONTROLLER_TIMEOUT = "controller_timeout"
    REPLY_TOO_LARGE = "reply_too_large"
    # The controller was unreachable for longer than `unavailable_report_s` during the run.
    CONTROLLER_UNAVAILABLE = "controller_unavailable"
    # A job on the run's own embedded cluster that the run did not submit (workers/foreign_jobs.py).
    FOREIGN_JOB = "foreign_job"
    # Seeing nothing is not a pass: a stream up for the whole window with no line, every
    # stream failed, discovery that never (or no longer) lists hosts.
    STREAM_NO_DATA = "stream_no_data"
    STREAMS_FAILED = "streams_failed"
    # A stream that ended cut off from its source (its followers failing up to the end): lines lost.
    STREAM_LOST = "stream_lost"
    DISCOVERY_FAILED = "discovery_failed"
    # More hosts than `streams.max_streams`: some hosts were not observed at all.
    HOSTS_OVER_LIMIT = "hosts_over_limit"
    # Hosts discovery refused (a name that may not reach a command line, a worker id listed
    # twice): those hosts were not observed, and a controller listing them is not right.
    HOSTS_REJECTED = "hosts_rejected"
    # An observe run (`--observe`) that saw no worker host listed (the controller's own stream
    # does not count), or whose autoscaler monitor never read a status: nothing to vouch for.
    NOTHING_OBSERVED = "nothing_observed"
    AUTOSCALER_UNREAD = "autoscaler_unread"
    # GCP: a slice or instance of the run's prefix could not be deleted (the verdict gives the command).
    CLOUD_CLEANUP_FAILED = "cloud_cleanup_failed"
    # Jobs the run submitted that it could not see end (job and tasks terminal) before it exited,
    # on a cluster that outlives the run (attached, --keep): they may still be running there
    # (workers/smoke_tests/sweep.py).
    JOBS_UNCONFIRMED = "jobs_unconfirmed"


# Which outcome wins when several reasons are present: the most severe first.
_SEVERITY = (Outcome.ERROR, Outcome.TIMEOUT, Outcome.CANCELLED, Outcome.FAILED, Outcome.PASSED)

REASON_OUTCOME: dict[FailureReason, Outcome] = {
    FailureReason.TEST_FAILED: Outcome.FAILED,
    FailureReason.DEADLINE_EXCEEDED: Outcome.TIMEOUT,
    FailureReason.CRITICAL_CHILD_FAILED: Outcome.ERROR,
    FailureReason.PROCESS_LEAK: Outcome.ERROR,
    FailureReason.ZOMBIE_LEFT: Outcome.ERROR,
    FailureReason.SIGTERM: Outcome.CANCELLED,
    FailureReason.SIGINT: Outcome.CANCELLED,
    FailureReason.CLUSTER_START_FAILED: Outcome.ERROR,
    FailureReason.CONTROLLER_UNREACHABLE: Outcome.ERROR,
    FailureReason.INTERNAL_ERROR: Outcome.ERROR,
    FailureReason.ARTEFACT_WRITE_FAILED: Outcome.ERROR,
    FailureReason.IRIS_API_MISMATCH: Outcome.ERROR,
    FailureReason.CONTROLLER_UNAUTHENTICATED: Outcome.ERROR,
    FailureReason.CONTROLLER_UNAVAILABLE: Outcome.ERROR,
    FailureReason.CONTROLLER_TIMEOUT: Outcome.ERROR,
    FailureReason.REPLY_TOO_LARGE: Outcome.ERROR,
    FailureReason.FOREIGN_JOB: Outcome.FAILED,
    FailureReason.STREAM_NO_DATA: Outcome.FAILED,
    FailureReason.STREAMS_FAILED: Outcome.FAILED,
    FailureReason.STREAM_LOST: Outcome.FAILED,
    FailureReason.DISCOVERY_FAILED: Outcome.FAILED,
    FailureReason.HOSTS_OVER_LIMIT: Outcome.FAILED,
    FailureReason.HOSTS_REJECTED: Outcome.FAILED,
    FailureReason.NOTHING_OBSERVED: Outcome.FAILED,
    FailureReason.AUTOSCALER_UNREAD: Outcome.FAILED,
    FailureReason.CLOUD_CLEANUP_FAILED: Outcome.ERROR,
    FailureReason.JOBS_UNCONFIRMED: Outcome.ERROR,
}


def outcome_for(reasons: list[FailureReason]) -> Outcome:
    outcomes = {REASON_OUTCOME[r] for r in reasons}
    return next((o for o in _SEVERITY if o in outcomes), Outcome.PASSED)


def exit_code_for(outcome: Outcome, reasons: list[FailureReason]) -> ExitCode:
    if outcome is Outcome.CANCELLED:
        if FailureReason.SIGINT in reasons:
            return ExitCode.INTERRUPTED_SIGINT
        return ExitCode.INTERRUPTED_SIGTERM
    return {
        Outcome.PASSED: ExitCode.PASSED,
        Outcome.FAILED: ExitCode.TEST_FAILED,
        Outcome.TIMEOUT: ExitCode.TIMEOUT,
        Outcome.ERROR: ExitCode.INFRA,
    }[outcome]
