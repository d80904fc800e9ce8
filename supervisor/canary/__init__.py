"""The canary daemon (`iris-smoke canary`): continuous smoke runs under systemd.

Parent-only code, like the rest of `supervisor/`: it starts runs as separate programs
and never imports grpc.
"""
