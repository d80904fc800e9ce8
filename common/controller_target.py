"""Which controller a child talks to, decided once at preflight and handed over the fork.

Neutral on purpose: the supervisor builds it, and it imports neither grpc nor an HTTP
client, so building it never loads either into the supervisor.

Scoping on a shared (standing) cluster: every job the run submits is named under
`job_root` and carries `run_id` in its environment (`JOB_RUN_ID_ENV`), and `owns` is the one
rule that decides whether a job is this run's. The adapters apply it to every listing and
refuse to terminate anything else, whatever the controller's own filter returned.
"""

import enum
from dataclasses import dataclass, field

# The job environment variable that names the run which submitted the job. Not the process
# run tag (IRIS_SMOKE_RUN_ID): tasks on an attached cluster are not this run's processes.
JOB_RUN_ID_ENV = "IRIS_SMOKE_JOB_RUN_ID"
# How much of one Iris reply a child reads before it refuses it (`reply_too_large`): 10,000
# workers of a real listing fit with room to spare (one CPU worker of Iris 0.2.227's
# ListWorkers is 854 bytes of JSON, a TPU host with its slice's attributes about 2 KB). Parsed,
# a real listing takes about 7 times its size in memory. `[iris] max_reply_bytes`.
DEFAULT_MAX_REPLY_BYTES = 32 * 1024 * 1024
# One FetchLogs page (workers.logservice_follow.PAGE_LINES entries, about 300 bytes each on a
# real Iris); smaller, as every stream's follower reads its own. `[iris] max_log_page_bytes`.
DEFAULT_MAX_LOG_PAGE_BYTES = 8 * 1024 * 1024


# An opaque proxy token (not a JWT with `exp`) is fetched again after this long.
PROXY_TOKEN_TTL_S = 300.0


@dataclass(frozen=True)
class ProxyToken:
    """Where the `Proxy-Authorization` bearer comes from, for an Iris behind a proxy that wants its
    own credential (IAP: an OIDC identity token): a file (`[iris] proxy_token_file`, re-read as it
    rotates) or a command whose stdout is the token (`[iris] proxy_token_command`, an argv, never
    a shell). Never the token itself, so this can be logged and put in a follower's argv."""

    file: str = ""
    command: tuple[str, ...] = ()
    ttl_s: float = PROXY_TOKEN_TTL_S

    @property
    def configured(self) -> bool:
        return bool(self.file or self.command)


class ApiKind(enum.StrEnum):
    """The wire a controller speaks."""

    EMBEDDED = "embedded"  # our own gRPC API (iris_smoke_api), the embedded local cluster
    IRIS = "iris"  # a real Iris controller: Connect over HTTP/1.1 with JSON bodies


class PriorityBand(enum.StrEnum):
    """The Iris scheduling band every job of the run is launched in (`[suite] priority_band`).

    Iris 0.2.227 (`iris/rpc/job.proto` PriorityBand): production (admin-only), interactive (its
    default for a root job, and what Iris's own rollout smoke uses), batch (preemptible). SYSTEM
    is Iris's own and INHERIT would hide which band a run asked for, so neither is offered.
    The embedded cluster has no bands and ignores it.
    """

    PRODUCTION = "production"
    INTERACTIVE = "interactive"
    BATCH = "batch"

    @property
    def wire(self) -> str:
        """The proto3 JSON name Iris reads: `PRIORITY_BAND_INTERACTIVE`."""
        return f"PRIORITY_BAND_{self.name}"


@dataclass(frozen=True)
class ControllerTarget:
    api: ApiKind
    # unix:/…/controller.sock for the embedded cluster (a private socket, never TCP), host:port
    # for an ssh cluster reached otherwise, http(s)://host:port for Iris.
    address: str
    # Every job this run submits is named under this root, so a run lists (and
    # terminates) only its own jobs: "<root>-<test>" embedded, "/<root>/<test>" on Iris.
    job_root: str
    # Where the Iris bearer token is: a file, or the name of an environment variable (never
    # the token itself, so this dataclass can be logged). Read in the child; never logged.
    token_file: str = ""
    token_env: str = ""
    run_id: str = ""
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    max_log_page_bytes: int = DEFAULT_MAX_LOG_PAGE_BYTES
    proxy_token: ProxyToken = field(default_factory=ProxyToken)
    priority_band: PriorityBand = PriorityBand.INTERACTIVE

    @property
    def job_prefix(self) -> str:
        """What every job id of this run starts with: "/<root>/" on Iris, "<root>-" embedded."""
        return f"/{self.job_root}/" if self.api is ApiKind.IRIS else f"{self.job_root}-"

    def owns(self, job_id: str) -> bool:
        """Whether `job_id` is one of this run's jobs (a nested child job included)."""
        return job_id.startswith(self.job_prefix)
