"""Domain errors of the controller; controller_service.py maps them to gRPC status codes."""


class ClusterError(Exception):
    """Base of the errors a caller can cause."""


class NotFoundError(ClusterError):
    pass


class InvalidArgumentError(ClusterError):
    pass
