"""Start and stop the local cluster: the gRPC server and the control loop.

Startup order: the controller's container log, the controller and its autoscaler, the
gRPC server (controller service, standard health, reflection) bound on a Unix socket in
a private directory (private_socket.py: no TCP port, only this user can connect), the
control-loop thread, then `cluster.json` beside the socket and last `controller.addr`, so
whoever reads the address can connect and learn the cluster's state dir and prefix.

The control loop is one long-lived thread: every TICK_S it runs the controller's tick
under the lock, applies the resulting commands (start/stop VM hosts) outside it, and
reaps VM hosts that exited. It is the only thread that starts VM hosts (their
parent-death signal is tied to the thread that forked them) and it stops them all on
its way out, before the server goes down.
"""

import contextlib
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from common.stop import StopRequest
from iris_smoke_api.v1 import controller_pb2 as pb
from iris_smoke_api.v1 import controller_pb2_grpc as pb_grpc
from local_cluster import layout, naming, private_socket
from local_cluster.autoscaler import Autoscaler, Command, StartVm
from local_cluster.config import ClusterConfig
from local_cluster.container_log import ContainerLogWriter
from local_cluster.controller import Controller
from local_cluster.controller_service import ControllerService
from local_cluster.eventlog import EventLog
from local_cluster.vm_processes import VmProcesses

TICK_S = 0.05
RPC_THREADS = 32
STOP_GRACE_S = 3.0  # VM hosts' TERM-to-KILL, then the server's grace for in-flight RPCs
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ControllerService"].full_name


class BindError(RuntimeError):
    pass


class LocalCluster:
    def __init__(self, config: ClusterConfig, state_dir: Path, prefix: str, crashed: StopRequest) -> None:
        self.config = config
        self.state_dir = state_dir
        self.prefix = prefix
        self.address = ""
        self._socket_dir: Path | None = None
        self._crashed = crashed
        log_path = layout.container_log(state_dir, naming.controller_vm(prefix), naming.CONTROLLER_CONTAINER)
        self._container = ContainerLogWriter(log_path)
        self.events = EventLog(self._container)
        self.autoscaler = Autoscaler(config, prefix, time.monotonic, events=self.events)
        self.controller = Controller(config, self.autoscaler, time.monotonic, self.events)
        self.vms = VmProcesses(state_dir, config.cluster, lambda: self.address)
        self._server: grpc.Server | None = None
        self._health = health.HealthServicer()
        self._stopping = threading.Event()
        self._loop = threading.Thread(target=self._run_loop, name="control-loop")

    def start(self) -> str:
        self.events("controller_starting", prefix=self.prefix, state_dir=str(self.state_dir))
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=RPC_THREADS, thread_name_prefix="rpc"))
        pb_grpc.add_ControllerServiceServicer_to_server(ControllerService(self.controller), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        self.address = self._bind(server)
        server.start()
        self._server = server
        for name in ("", SERVICE_NAME):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._loop.start()
        assert self._socket_dir is not None
        info = private_socket.ClusterInfo(state_dir=str(self.state_dir.resolve()), prefix=self.prefix)
        private_socket.write_info(self._socket_dir, info)
        layout.write_atomic(layout.addr_file(self.state_dir), self.address + "\n")
        self.events("controller_serving", address=self.address)
        return self.address

    def stop(self) -> None:
        self._stopping.set()
        if self._loop.is_alive():
            # The loop checks the event every tick; the bound only matters if a tick wedges.
            self._loop.join(STOP_GRACE_S)
        self._health.enter_graceful_shutdown()
        if self._server is not None:
            self._server.stop(grace=STOP_GRACE_S).wait(STOP_GRACE_S + 1)
        with contextlib.suppress(FileNotFoundError):
            layout.addr_file(self.state_dir).unlink()
        if self._socket_dir is not None:
            private_socket.remove_dir(self._socket_dir)
        self.events("controller_stopped")
        self._container.close()

    def _bind(self, server: grpc.Server) -> str:
        try:
            self._socket_dir = private_socket.make_dir()
        except (OSError, private_socket.SocketPathError) as exc:
            raise BindError(f"cannot make a private socket directory: {exc}") from None
        address = private_socket.address(self._socket_dir)
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise BindError(f"cannot listen on {address}: {exc}") from None
        if bound == 0:
            raise BindError(f"cannot listen on {address}")
        return address

    def _run_loop(self) -> None:
        try:
            while not self._stopping.wait(TICK_S):
                with self.controller.lock:
                    commands = self.controller.tick()
                self._apply(commands)
                self._reaped(self.vms.poll())
        except Exception:
            self.events.log_exception("control_loop_crashed")
            self._crashed.request("control_loop_crashed")
        finally:
            with self.controller.lock:
                self.autoscaler.stop_all()
            self._reaped(self.vms.stop_all(STOP_GRACE_S))

    def _apply(self, commands: Sequence[Command]) -> None:
        for cmd in commands:
            if isinstance(cmd, StartVm):
                try:
                    pid = self.vms.start(cmd)
                except OSError as exc:
                    self.events.warning("vm_start_failed", vm=cmd.vm_name, error=str(exc))
                    self._reaped([(cmd.vm_name, 127)])
                    continue
                with self.controller.lock:
                    self.controller.vm_started(cmd.vm_name, pid)
                self.events("vm_started", vm=cmd.vm_name, slice=cmd.slice_id, vm_pid=pid)
            else:
                self.vms.stop(cmd.vm_name)

    def _reaped(self, exits: Sequence[tuple[str, int]]) -> None:
        for name, code in exits:
            with self.controller.lock:
                commands = self.controller.vm_exited(name, code)
            self._apply(commands)
