"""Domain errors of the controller; controller_service.py maps them to gRPC status codes."""


class ClusterError(Exception):
    """Base of the errors a caller can cause."""


class NotFoundError(ClusterError):
    pass


class InvalidArgumentError(ClusterError):
    pass


class ConfigError(ClusterError):
    """A bad config value; the message names the field and says what would be accepted."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
