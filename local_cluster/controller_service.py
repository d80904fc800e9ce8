"""The gRPC face of the controller: each method unpacks, delegates, packs.

All methods run under the controller's lock (`_call`), which is also where domain
errors become gRPC status codes, in one place.
"""

import contextlib
from collections.abc import Iterator

import grpc

from common import log_levels
from common.states import job_state_of
from iris_smoke_api.v1 import controller_pb2 as pb
from iris_smoke_api.v1 import controller_pb2_grpc as pb_grpc
from local_cluster import convert
from local_cluster.controller import Controller
from local_cluster.errors import ClusterError, InvalidArgumentError, NotFoundError
from local_cluster.naming import group_attributes

STATUS_OF = {NotFoundError: grpc.StatusCode.NOT_FOUND, InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT}


class ControllerService(pb_grpc.ControllerServiceServicer):
    def __init__(self, controller: Controller) -> None:
        self._c = controller
        self._wall = controller.wall

    @contextlib.contextmanager
    def _call(self, context: grpc.ServicerContext) -> Iterator[Controller]:
        try:
            with self._c.lock:
                yield self._c
        except ClusterError as exc:
            context.abort(STATUS_OF.get(type(exc), grpc.StatusCode.FAILED_PRECONDITION), str(exc))

    def LaunchJob(self, request: pb.LaunchJobRequest, context: grpc.ServicerContext) -> pb.LaunchJobResponse:
        with self._call(context) as c:
            job = c.launch_job(convert.spec_from_pb(request))
            return pb.LaunchJobResponse(job_id=job.job_id)

    def GetJobStatus(self, request: pb.GetJobStatusRequest, context: grpc.ServicerContext) -> pb.GetJobStatusResponse:
        with self._call(context) as c:
            return pb.GetJobStatusResponse(job=convert.job_to_pb(c.job(request.job_id), self._wall))

    def ListJobs(self, request: pb.ListJobsRequest, context: grpc.ServicerContext) -> pb.ListJobsResponse:
        with self._call(context) as c:
            jobs = c.list_jobs(request.name_prefix, [job_state_of(s) for s in request.states])
            return pb.ListJobsResponse(jobs=[convert.job_to_pb(j, self._wall) for j in jobs])

    def TerminateJob(self, request: pb.TerminateJobRequest, context: grpc.ServicerContext) -> pb.TerminateJobResponse:
        with self._call(context) as c:
            return pb.TerminateJobResponse(job=convert.job_to_pb(c.terminate_job(request.job_id), self._wall))

    def ListTasks(self, request: pb.ListTasksRequest, context: grpc.ServicerContext) -> pb.ListTasksResponse:
        with self._call(context) as c:
            return pb.ListTasksResponse(tasks=[convert.task_to_pb(t, self._wall) for t in c.job(request.job_id).tasks])

    def GetTaskLogs(self, request: pb.GetTaskLogsRequest, context: grpc.ServicerContext) -> pb.GetTaskLogsResponse:
        with self._call(context) as c:
            min_level = log_levels.level_of_number(request.min_level)
            lines = c.task_logs(request.job_id, request.task_index, request.limit, min_level)
            return pb.GetTaskLogsResponse(lines=[convert.log_line_to_pb(*line) for line in lines])

    def RegisterEndpoint(
        self, request: pb.RegisterEndpointRequest, context: grpc.ServicerContext
    ) -> pb.RegisterEndpointResponse:
        with self._call(context) as c:
            endpoint = c.register_endpoint(request.name, request.address, request.task_id)
            return pb.RegisterEndpointResponse(endpoint_id=endpoint.endpoint_id)

    def ListEndpoints(
        self, request: pb.ListEndpointsRequest, context: grpc.ServicerContext
    ) -> pb.ListEndpointsResponse:
        with self._call(context) as c:
            endpoints = c.list_endpoints(request.prefix)
            return pb.ListEndpointsResponse(endpoints=[convert.endpoint_to_pb(e) for e in endpoints])

    def ListWorkers(self, request: pb.ListWorkersRequest, context: grpc.ServicerContext) -> pb.ListWorkersResponse:
        if self._c.config.cluster.fail_list_workers:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "injected fault: cluster.fail_list_workers")
        with self._call(context) as c:
            return pb.ListWorkersResponse(workers=[convert.worker_to_pb(w, self._wall) for w in c.workers.values()])

    def GetAutoscalerStatus(
        self, request: pb.GetAutoscalerStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetAutoscalerStatusResponse:
        with self._call(context) as c:
            a, ids = c.autoscaler, set(c.workers)
            return pb.GetAutoscalerStatusResponse(
                groups=[
                    convert.group_to_pb(g, self._wall, ids, group_attributes(g.config, c.config.cluster))
                    for g in a.groups.values()
                ],
                current_demand=sum(g.current_demand for g in a.groups.values()),
                recent_actions=[convert.action_to_pb(x, self._wall) for x in a.actions],
                unmet_demand=[convert.unmet_to_pb(u) for u in a.unmet],
            )

    def RegisterWorker(
        self, request: pb.RegisterWorkerRequest, context: grpc.ServicerContext
    ) -> pb.RegisterWorkerResponse:
        with self._call(context) as c:
            worker = c.register_worker(request.vm_name, request.pid)
            interval = c.config.cluster.heartbeat_interval_s
            return pb.RegisterWorkerResponse(worker_id=worker.worker_id, heartbeat_interval_seconds=interval)

    def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.ServicerContext) -> pb.HeartbeatResponse:
        with self._call(context) as c:
            reply = c.heartbeat(
                request.worker_id,
                [convert.key_from_pb(r) for r in request.running],
                [convert.report_from_pb(u) for u in request.updates],
                convert.logs_from_pb(list(request.logs)),
            )
            return convert.heartbeat_reply_to_pb(reply)
