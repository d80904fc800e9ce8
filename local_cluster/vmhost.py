"""A VM host: one local "cloud VM" of a slice, running the `iris-worker` container.

    python -m local_cluster.vmhost --controller ADDR --vm NAME --state-dir DIR --parent-pid PID ...

Lifecycle: arm the parent-death signal (and check getppid for the race), "boot" for the
configured delay (the container log appears only after it, as a real container's
would), fail the boot if told to, register with the controller, then heartbeat until
stopped. Each heartbeat reports the running tasks, their state changes and new output,
and gets back the tasks to run and to kill: the controller's view is reconciled, so a
lost reply is repaired by the next one. On SIGTERM (or the controller's word that this
worker is gone) every task's process group is stopped, TERM then KILL, before exit.

Threads: the main thread starts every task (task_runner.py relies on that: its
parent-death signal fires when the *thread* that forked it ends); one reader thread per
task copies its output into the container log and the next heartbeat.
"""

import argparse
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import grpc

from common import env, linux, logs, ports
from common.child_exit import ChildExit
from common.stop import TERM_OR_INT, StopRequest
from iris_smoke_api.v1 import controller_pb2 as pb
from iris_smoke_api.v1 import controller_pb2_grpc as pb_grpc
from local_cluster import layout
from local_cluster.child_job import CONTROLLER_ENV, PYTHON_ENV
from local_cluster.container_log import ContainerLogWriter
from local_cluster.eventlog import EventLog
from local_cluster.naming import WORKER_CONTAINER
from local_cluster.task_process import TaskKey, TaskProcess
from local_cluster.vm_processes import child_env

BOOT_FAILED_EXIT = 75  # EX_TEMPFAIL: the cloud could not give us this VM
RPC_TIMEOUT_S = 2.0
REGISTER_PATIENCE_S = 10.0
# Without a successful heartbeat for this long the controller is gone: stop, do not linger.
CONTROLLER_LOST_S = 15.0
TASK_STOP_GRACE_S = 1.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="local_cluster.vmhost")
    parser.add_argument("--controller", required=True)
    parser.add_argument("--vm", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--parent-pid", required=True, type=int)
    parser.add_argument("--boot-delay", type=float, default=0.0)
    parser.add_argument("--heartbeat-interval", type=float, default=0.1)
    parser.add_argument("--crash-after", type=float, default=0.0)
    parser.add_argument("--fail-boot", action="store_true")
    return parser.parse_args(argv)


class VmHost:
    def __init__(self, args: argparse.Namespace, stop: StopRequest) -> None:
        self.args = args
        self.stop = stop
        self.container = ContainerLogWriter(layout.container_log(args.state_dir, args.vm, WORKER_CONTAINER))
        self.events = EventLog(self.container)
        self.work_dir = layout.vm_dir(args.state_dir, args.vm) / "work"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.channel = grpc.insecure_channel(args.controller)
        self.stub = pb_grpc.ControllerServiceStub(self.channel)
        self.tasks: dict[TaskKey, TaskProcess] = {}
        self.finished: set[TaskKey] = set()
        self.reports: list[pb.TaskUpdate] = []
        self.last_chunks: list[pb.TaskLogChunk] = []  # output of reaped tasks, not sent yet

    def run(self) -> int:
        self.events("container_started", vm=self.args.vm, vm_pid=os.getpid())
        try:
            if not self._register():
                return ChildExit.ERROR
            ready_at = last_ok = time.monotonic()
            while not self.stop.requested():
                self._reap_tasks()
                if self._heartbeat():
                    last_ok = time.monotonic()
                elif time.monotonic() - last_ok > CONTROLLER_LOST_S:
                    self.events.warning("controller_lost", seconds=round(time.monotonic() - last_ok, 1))
                    break
                if self.args.crash_after and time.monotonic() - ready_at > self.args.crash_after:
                    self.events.warning("injected_crash", after_s=self.args.crash_after)
                    os.kill(os.getpid(), signal.SIGKILL)
                self.stop.wait(self.args.heartbeat_interval)
            return ChildExit.OK
        finally:
            self._stop_tasks()
            self.events("container_stopped", vm=self.args.vm)
            self.channel.close()
            self.container.close()

    def _register(self) -> bool:
        deadline = time.monotonic() + REGISTER_PATIENCE_S
        request = pb.RegisterWorkerRequest(vm_name=self.args.vm, pid=os.getpid())
        while not self.stop.requested():
            try:
                reply = self.stub.RegisterWorker(request, timeout=RPC_TIMEOUT_S)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                    self.events.warning("register_failed", code=exc.code().name, details=exc.details())
                    return False
                self.stop.wait(0.1)
                continue
            self.events("worker_registered", worker_id=reply.worker_id)
            return True
        return False

    def _heartbeat(self) -> bool:
        reports, self.reports = self.reports, []
        chunks, self.last_chunks = self.last_chunks, []
        chunks += [t.take_log_chunk() for t in self.tasks.values()]
        request = pb.HeartbeatRequest(
            worker_id=self.args.vm,
            running=[_ref(key) for key in self.tasks],
            updates=reports,
            logs=[c for c in chunks if c.lines],
        )
        try:
            reply = self.stub.Heartbeat(request, timeout=RPC_TIMEOUT_S)
        except grpc.RpcError:
            self.reports = reports + self.reports
            for chunk in chunks:
                task = self.tasks.get(_key(chunk.task))
                if task is not None:
                    task.give_back(chunk)
                elif chunk.lines:
                    self.last_chunks.append(chunk)
            return False
        for ref in reply.kill:
            task = self.tasks.get(_key(ref))
            if task is not None:
                task.terminate(TASK_STOP_GRACE_S)
        for assignment in reply.run:
            self._start_task(assignment)
        if reply.shutdown:
            self.events.warning("worker_shutdown_requested")
            self.stop.request("controller_shutdown")
        return True

    def _start_task(self, a: pb.TaskAssignment) -> None:
        key = _key(a.task)
        if key in self.tasks or key in self.finished:
            return  # the reply is a full view, not a queue: already running or done
        # A task may submit child jobs (local_cluster.child_job): it gets the controller's
        # address and this interpreter, which imports the package through PYTHONPATH.
        task_env = (
            child_env()
            | {"PYTHONUNBUFFERED": "1"}
            | dict(a.env)
            | {
                CONTROLLER_ENV: self.args.controller,
                PYTHON_ENV: sys.executable,
            }
            | _named_ports(list(a.ports))
        )
        try:
            cwd = self._task_dir(key, a.workdir_files)
            task = TaskProcess.start(key, list(a.argv), task_env | {"IRIS_WORKDIR": str(cwd)}, cwd, self.container)
        except OSError as exc:
            self.reports.append(pb.TaskUpdate(task=a.task, state=pb.TASK_STATE_FAILED, exit_code=127, error=str(exc)))
            self.finished.add(key)
            return
        self.tasks[key] = task
        self.reports.append(pb.TaskUpdate(task=a.task, state=pb.TASK_STATE_RUNNING))
        self.events("task_started", task=f"{key[0]}/{key[1]}", task_pid=task.pid, argv=" ".join(a.argv)[:200])

    def _task_dir(self, key: TaskKey, files: Mapping[str, bytes]) -> Path:
        """Where the task runs: the VM's work directory, or, for a task with workdir files, a
        directory of its own attempt holding them (names are plain, checked at launch)."""
        if not files:
            return self.work_dir
        task_dir = self.work_dir / "tasks" / f"{key[0].replace('/', '.')}.{key[1]}.{key[2]}"
        task_dir.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (task_dir / name).write_bytes(data)
        return task_dir

    def _reap_tasks(self) -> None:
        for key, task in list(self.tasks.items()):
            code = task.reap_if_exited()
            if code is None:
                continue
            del self.tasks[key]
            self.finished.add(key)
            self.last_chunks.append(task.take_log_chunk())
            state, error = _outcome(code, task.killed)
            self.reports.append(pb.TaskUpdate(task=_ref(key), state=state, exit_code=code, error=error))
            self.events("task_exited", task=f"{key[0]}/{key[1]}", exit_code=code)

    def _stop_tasks(self) -> None:
        for task in self.tasks.values():
            task.terminate(TASK_STOP_GRACE_S)
        deadline = time.monotonic() + TASK_STOP_GRACE_S
        for task in self.tasks.values():
            task.wait_and_kill(max(0.0, deadline - time.monotonic()))


def _outcome(code: int, killed: bool) -> tuple["pb.TaskState.ValueType", str]:
    if killed:
        return pb.TASK_STATE_KILLED, "killed by the controller"
    if code == 0:
        return pb.TASK_STATE_SUCCEEDED, ""
    return pb.TASK_STATE_FAILED, f"exit code {code}"


def _key(ref: pb.TaskRef) -> TaskKey:
    return (ref.job_id, ref.task_index, ref.attempt)


def _ref(key: TaskKey) -> pb.TaskRef:
    return pb.TaskRef(job_id=key[0], task_index=key[1], attempt=key[2])


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # Die with the cluster. The getppid check closes the race where the cluster died
    # before the signal was armed (we would then be init's child and never get it).
    linux.set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != args.parent_pid:
        return ChildExit.PARENT_GONE
    linux.set_process_name(f"vm:{args.vm}"[:15])
    logs.configure(role="vmhost", run_id=os.environ.get(env.RUN_TAG), stdout_fd=2, level="warning", child=args.vm)
    stop = StopRequest()
    stop.on_signals(TERM_OR_INT)
    if stop.wait(args.boot_delay):
        return ChildExit.OK
    if args.fail_boot:
        return BOOT_FAILED_EXIT
    return VmHost(args, stop).run()


def _named_ports(names: list[str]) -> dict[str, str]:
    """A free port for each name the job asked for, as Iris's worker gives them: `IRIS_PORT_<NAME>`."""
    return {f"IRIS_PORT_{n.upper()}": str(p) for n, p in zip(names, ports.free_ports(len(names)), strict=True)}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
