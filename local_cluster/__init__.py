"""The embedded local cluster: a gRPC controller, a scheduler, an autoscaler and VM hosts.

Everywhere but a cloud bastion, a smoke test runs against this. One process serves the
controller API (server.py) and runs the control loop (controller.py: scheduler.py and
autoscaler.py decide, vm_processes.py acts); every VM is a real child process
(vmhost.py, started with fork+exec) that runs tasks and writes a docker-style container
log (container_log.py), read back by `local-cluster logs` (logs_command.py).

Importing this package must stay cheap and must not import grpc: `local-cluster logs` is
on the hot path of log streaming.
"""
