"""The controller: jobs, tasks, workers and the control loop's tick, in plain Python.

Not thread-safe by itself: the gRPC handlers and the control loop both hold `lock`
around every call (server.py, controller_service.py), which keeps each RPC and each tick
atomic with respect to the others. Nothing here blocks or starts a process: `tick` and
the VM callbacks return autoscaler commands that the caller applies outside the lock.

A tick, in order: fail workers whose heartbeats stopped, drop workers whose VMs are
gone, apply timeouts, place pending tasks, hand the rest to the autoscaler as demand,
then explain every still-pending task (`pending_reason`, `can_be_scheduled`).
"""

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from common.log_levels import LogLevel, level_of_line, passes
from common.states import JobState, TaskState, job_finished, task_finished
from local_cluster import jobs as job_rules
from local_cluster.autoscaler import Autoscaler, Command, Demand
from local_cluster.config import ClusterConfig
from local_cluster.endpoints import MAX_ENDPOINTS, Endpoint, EndpointRegistry
from local_cluster.errors import ClusterError, InvalidArgumentError, NotFoundError
from local_cluster.fit import infeasible_reason
from local_cluster.model import Device, Job, JobSpec, Task, Worker
from local_cluster.naming import device_env, host_attributes
from local_cluster.scheduler import Assignment as ScheduledTask
from local_cluster.scheduler import Blocked, schedule
from local_cluster.states import VmState

JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
# A plain file name: a workdir file is written into the task's own directory and nowhere else.
WORKDIR_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
TaskKey = tuple[str, int, int]  # job_id, task_index, attempt


@dataclass(frozen=True)
class TaskReport:
    key: TaskKey
    state: TaskState
    exit_code: int = 0
    error: str = ""


@dataclass(frozen=True)
class Assignment:
    key: TaskKey
    num_tasks: int
    argv: tuple[str, ...]
    env: dict[str, str]
    ports: tuple[str, ...] = ()  # the VM host allocates one free port per name
    workdir_files: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class HeartbeatReply:
    run: list[Assignment]
    kill: list[TaskKey]
    shutdown: bool


class Controller:
    def __init__(
        self,
        config: ClusterConfig,
        autoscaler: Autoscaler,
        clock: Callable[[], float],
        events: job_rules.Events,
    ) -> None:
        self.config = config
        self.autoscaler = autoscaler
        self.lock = threading.Lock()
        self.jobs: dict[str, Job] = {}
        self.workers: dict[str, Worker] = {}
        self._clock = clock
        self._events = events
        self._wall_offset = time.time() - clock()
        self._next_job = 0
        self.endpoints = EndpointRegistry()

    def wall(self, t: float) -> float:
        return t + self._wall_offset

    # ------------------------------------------------------------ the API

    def launch_job(self, spec: JobSpec) -> Job:
        _validate(spec)
        spec = self._as_child(spec) if spec.parent_job_id else spec
        if self.config.cluster.ignore_constraints:
            spec = replace(spec, constraints=())
        now = self._clock()
        self._next_job += 1
        job_id = f"{spec.name}-{self._next_job}"
        job = Job(job_id, spec, now, [Task(job_id, i) for i in range(spec.replicas)])
        self.jobs[job_id] = job
        self._events("job_launched", job_id=job_id, replicas=spec.replicas, device=spec.device.describe())
        reason = infeasible_reason(spec, self.config)
        if reason is not None:
            job_rules.finish_job(job, JobState.UNSCHEDULABLE, now, self.workers, self._events, reason,
                                 others=TaskState.UNSCHEDULABLE)  # fmt: skip
        return job

    def _as_child(self, spec: JobSpec) -> JobSpec:
        """A child job lives under its parent's name and inherits its constraints, as on Iris."""
        parent = self.job(spec.parent_job_id)
        if job_finished(parent.state):
            raise ClusterError(f"parent job {parent.job_id!r} has finished ({parent.state.name})")
        inherited = () if self.config.cluster.drop_child_constraints else parent.spec.constraints
        own = tuple(c for c in spec.constraints if c not in inherited)
        return replace(spec, name=f"{parent.spec.name}/{spec.name}", constraints=inherited + own)

    def job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r}")
        return job

    def list_jobs(self, name_prefix: str, states: Sequence[JobState]) -> list[Job]:
        return [
            j for j in self.jobs.values() if j.spec.name.startswith(name_prefix) and (not states or j.state in states)
        ]

    def terminate_job(self, job_id: str) -> Job:
        job = self.job(job_id)
        if not job_finished(job.state):
            job_rules.finish_job(
                job, JobState.KILLED, self._clock(), self.workers, self._events, "terminated by request"
            )
        return job

    def task_logs(self, job_id: str, index: int, limit: int, min_level: LogLevel) -> list[tuple[int, str, LogLevel]]:
        """The task's last `limit` lines at `min_level` or above, each with its level (common.log_levels)."""
        lines = [(ns, text, level_of_line(text)) for ns, text in self._task_of(job_id, index).log]
        kept = [line for line in lines if passes(line[2], min_level)]
        return kept[-limit:] if limit > 0 else kept

    def _task_of(self, job_id: str, index: int) -> Task:
        tasks = self.job(job_id).tasks
        if not 0 <= index < len(tasks):
            raise NotFoundError(f"job {job_id!r} has no task {index} (it has {len(tasks)})")
        return tasks[index]

    def register_endpoint(self, name: str, address: str, task_id: str) -> Endpoint:
        job_id, _, index = task_id.rpartition("/")
        if not index.isdigit():
            raise InvalidArgumentError(f"task_id {task_id!r}: expected <job_id>/<task_index>")
        task = self._task_of(job_id, int(index))
        if task.state != TaskState.RUNNING:
            raise ClusterError(f"task {task_id!r} is {task.state}, not running: endpoint not registered")
        endpoint = self.endpoints.add(name, address, task_id)
        if endpoint is None:
            raise ClusterError(f"the endpoint registry is full ({MAX_ENDPOINTS})")
        self._events("endpoint_registered", name=name, task=task_id)
        return endpoint

    def list_endpoints(self, prefix: str) -> list[Endpoint]:
        if self.config.cluster.hide_endpoints:  # fault injection: the registry forgets what it was told
            return []
        return self.endpoints.listed(prefix, self._task_running)

    def _task_running(self, task_id: str) -> bool:
        job_id, _, index = task_id.rpartition("/")
        job = self.jobs.get(job_id)
        return job is not None and job.tasks[int(index)].state == TaskState.RUNNING

    # ------------------------------------------------------------ VM hosts

    def register_worker(self, vm_name: str, pid: int) -> Worker:
        existing = self.workers.get(vm_name)
        if existing is not None and existing.healthy:
            return existing  # a retried registration whose first reply was lost
        ready_vms = self.autoscaler.vm_registered(vm_name)
        vm = self.autoscaler.vm(vm_name)
        if ready_vms is None or vm is None:
            raise NotFoundError(f"VM {vm_name!r} is not booting in this cluster")
        s = self.autoscaler.slice_of(vm)
        group = self.config.group(s.group)
        device = Device(group.accelerator_type, group.accelerator_variant, group.chips_per_host)
        attributes = host_attributes(group, self.config.cluster, s.slice_id, vm.host_index)
        holds = self.config.cluster.hold_killed_resources
        worker = Worker(vm_name, s.slice_id, s.group, vm.host_index, device, attributes, pid, self._clock(),
                        cpu_millicores=group.cpu_millicores, holds_killed=holds)  # fmt: skip
        self.workers[vm_name] = worker
        for ready in ready_vms:
            self.workers[ready.name].schedulable = True
        self._events("worker_registered", worker_id=vm_name, slice=s.slice_id, host=vm.host_index, vm_pid=pid)
        return worker

    def heartbeat(
        self, worker_id: str, running: Sequence[TaskKey], reports: Sequence[TaskReport],
        logs: Sequence[tuple[TaskKey, list[tuple[int, str]]]],
    ) -> HeartbeatReply:  # fmt: skip
        worker = self.workers.get(worker_id)
        if worker is None or not worker.healthy:
            return HeartbeatReply([], list(running), shutdown=True)
        worker.last_heartbeat = self._clock()
        for key, lines in logs:
            task = self._task(key, worker_id)
            if task is not None:
                task.log.extend(lines)
        for report in reports:
            self._apply_report(report, worker_id)
        kill = [key for key in running if self._unwanted(key, worker_id)]
        known = set(running)
        run = [self._assignment(t) for t in self._tasks_on(worker_id, TaskState.ASSIGNED) if _key(t) not in known]
        return HeartbeatReply(run, kill, shutdown=False)

    def _task(self, key: TaskKey, worker_id: str) -> Task | None:
        job = self.jobs.get(key[0])
        if job is None or not 0 <= key[1] < len(job.tasks):
            return None
        task = job.tasks[key[1]]
        return task if task.worker_id == worker_id and task.attempts == key[2] else None

    def _unwanted(self, key: TaskKey, worker_id: str) -> bool:
        task = self._task(key, worker_id)
        return task is None or task_finished(task.state)

    def _tasks_on(self, worker_id: str, state: TaskState) -> list[Task]:
        worker = self.workers[worker_id]
        tasks = (self.jobs[job_id].tasks[index] for job_id, index in worker.active_tasks)
        return [t for t in tasks if t.state == state]

    def _assignment(self, task: Task) -> Assignment:
        spec = self.jobs[task.job_id].spec
        env = (
            dict(spec.env)
            | {
                "IRIS_JOB_ID": task.job_id,
                "IRIS_TASK_INDEX": str(task.index),
                "IRIS_NUM_TASKS": str(spec.replicas),
                "IRIS_WORKER_ID": task.worker_id,
            }
            | device_env(self.workers[task.worker_id])
        )
        # Fault injection (`drop_task_ports`): the ports asked for never reach the host.
        ports = () if self.config.cluster.drop_task_ports else spec.ports
        return Assignment(_key(task), spec.replicas, spec.argv, env, ports, spec.workdir_files)

    def _apply_report(self, report: TaskReport, worker_id: str) -> None:
        task = self._task(report.key, worker_id)
        if task is None or task_finished(task.state):
            return  # a duplicate, or about a task the controller already ended
        job = self.jobs[task.job_id]
        now = self._clock()
        report = self._injected_failure(report, task, job)
        if report.state == TaskState.RUNNING:
            task.state, task.started_at = TaskState.RUNNING, now
            job.started_at = job.started_at if job.started_at is not None else now
        elif task_finished(report.state):
            task.exit_code = report.exit_code
            job_rules.end_task(task, report.state, now, self.workers, report.error)
            self._events("task_finished", task_id=task.task_id, state=report.state.name, exit_code=report.exit_code)
        job_rules.settle(job, now, self.workers, self._events)

    def _injected_failure(self, report: TaskReport, task: Task, job: Job) -> TaskReport:
        """The fault fail_nth_task: that task's end is reported FAILED whatever it was."""
        nth = self.config.cluster.fail_nth_task
        if nth and task.index == nth - 1 and job.spec.replicas >= nth and task_finished(report.state):
            return replace(report, state=TaskState.FAILED, exit_code=1, error=f"injected fault fail_nth_task={nth}")
        return report

    # ------------------------------------------------------------ the control loop

    def tick(self) -> list[Command]:
        now = self._clock()
        commands = self._check_heartbeats(now)
        self._drop_gone_workers(now)
        self._apply_timeouts(now)
        live = [j for j in self.jobs.values() if not job_finished(j.state)]
        scheduling = schedule(live, [w for w in self.workers.values() if w.schedulable and w.healthy])
        for a in scheduling.assignments:
            self._assign(self.jobs[a.job_id], a, now)
        demand = [Demand(b.job_id, len(b.task_indices), self.jobs[b.job_id].spec) for b in scheduling.blocked]
        busy = {w.slice_id for w in self.workers.values() if w.active_tasks}
        commands += self.autoscaler.update(demand, busy)
        self._explain(scheduling.blocked)
        return commands

    def _assign(self, job: Job, a: ScheduledTask, now: float) -> None:
        task = job.tasks[a.task_index]
        task.state, task.worker_id = TaskState.ASSIGNED, a.worker_id
        task.attempts += 1
        task.pending_reason, task.can_be_scheduled = "", True
        worker = self.workers[a.worker_id]
        worker.active_tasks[(job.job_id, a.task_index)] = a.units
        worker.held_cpu[(job.job_id, a.task_index)] = a.cpu
        self._events("task_assigned", task_id=task.task_id, worker_id=a.worker_id)
        job_rules.settle(job, now, self.workers, self._events)
        job.pending_reason = ""

    def _explain(self, blocked: list[Blocked]) -> None:
        for b in blocked:
            job = self.jobs[b.job_id]
            reason, will_come = b.reason, False
            group = self.autoscaler.routes.get(b.job_id)
            if group is not None:
                waiting, will_come = self.autoscaler.waiting_reason(group)
                reason = f"{reason}; {waiting}"
            job.pending_reason = reason
            for index in b.task_indices:
                job.tasks[index].pending_reason, job.tasks[index].can_be_scheduled = reason, will_come

    def _check_heartbeats(self, now: float) -> list[Command]:
        commands: list[Command] = []
        timeout = self.config.cluster.heartbeat_timeout_s
        for worker in self.workers.values():
            if worker.healthy and now - worker.last_heartbeat > timeout:
                reason = f"worker {worker.worker_id} missed heartbeats for {now - worker.last_heartbeat:.1f}s"
                self._fail_worker(worker, reason, now)
                commands += self.autoscaler.slice_failed(worker.slice_id, worker.worker_id, reason)
                for sibling in self.workers.values():
                    if sibling.slice_id == worker.slice_id:
                        sibling.schedulable = False
        return commands

    def _fail_worker(self, worker: Worker, reason: str, now: float) -> None:
        worker.healthy = worker.schedulable = False
        self._events("worker_failed", worker_id=worker.worker_id, reason=reason)
        for job_id, index in list(worker.active_tasks):
            task = self.jobs[job_id].tasks[index]
            if task_finished(task.state):
                continue  # ended a moment ago with a coscheduled sibling on this worker
            job_rules.end_task(task, TaskState.WORKER_FAILED, now, self.workers, reason)
            job_rules.settle(self.jobs[job_id], now, self.workers, self._events)

    def _drop_gone_workers(self, now: float) -> None:
        for worker in list(self.workers.values()):
            vm = self.autoscaler.vm(worker.worker_id)
            if vm is None:  # its slice was deleted and every VM of it has exited
                if worker.healthy and worker.active_tasks:
                    self._fail_worker(worker, f"VM {worker.worker_id} was deleted", now)
                del self.workers[worker.worker_id]
            elif vm.state != VmState.READY:
                worker.schedulable = False

    def _apply_timeouts(self, now: float) -> None:
        for job in self.jobs.values():
            spec = job.spec
            if job_finished(job.state):
                continue
            waiting = any(t.state == TaskState.PENDING for t in job.tasks)
            if waiting and spec.scheduling_timeout_s is not None and now - job.submitted_at > spec.scheduling_timeout_s:
                why = job.pending_reason or "no capacity"
                error = f"not scheduled within {spec.scheduling_timeout_s:g}s: {why}"
                job_rules.finish_job(job, JobState.UNSCHEDULABLE, now, self.workers, self._events, error,
                                     others=TaskState.UNSCHEDULABLE)  # fmt: skip
            elif job.started_at is not None and spec.timeout_s is not None and now - job.started_at > spec.timeout_s:
                error = f"job timed out after {spec.timeout_s:g}s"
                job_rules.finish_job(job, JobState.FAILED, now, self.workers, self._events, error)

    def vm_started(self, vm_name: str, pid: int) -> None:
        self.autoscaler.vm_started(vm_name, pid)

    def vm_exited(self, vm_name: str, exit_code: int) -> list[Command]:
        self._events("vm_exited", vm=vm_name, exit_code=exit_code)
        return self.autoscaler.vm_exited(vm_name, exit_code)


def _key(task: Task) -> TaskKey:
    return (task.job_id, task.index, task.attempts)


def _validate(spec: JobSpec) -> None:
    if not JOB_NAME.match(spec.name):
        raise InvalidArgumentError(f"name: must match {JOB_NAME.pattern}, got {spec.name!r}")
    if not spec.argv or not spec.argv[0]:
        raise InvalidArgumentError("entrypoint: must be a non-empty argv list")
    if not 1 <= spec.replicas <= 1024:
        raise InvalidArgumentError(f"replicas: must be between 1 and 1024, got {spec.replicas}")
    if spec.device.count < 0:
        raise InvalidArgumentError(f"resources.device.count: must be >= 0, got {spec.device.count}")
    for field_name, value in (("scheduling_timeout", spec.scheduling_timeout_s), ("timeout", spec.timeout_s)):
        if value is not None and value <= 0:
            raise InvalidArgumentError(f"{field_name}: must be > 0 when set, got {value}")
    for i, constraint in enumerate(spec.constraints):
        if not constraint.key:
            raise InvalidArgumentError(f"constraints[{i}].key: must not be empty")
    if spec.cpu_millicores < 0:
        raise InvalidArgumentError(f"resources.cpu_millicores: must be >= 0, got {spec.cpu_millicores}")
    for name, _ in spec.workdir_files:
        if not WORKDIR_FILE.match(name):
            raise InvalidArgumentError(f"workdir_files: a name must match {WORKDIR_FILE.pattern}, got {name!r}")
