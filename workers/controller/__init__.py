"""One small controller interface (`api.Controller`) and its two adapters.

- `grpc_api`: the embedded local cluster, over our own gRPC API;
- `connect_api`: a real Iris controller, over Connect (HTTP/1.1, JSON).

`open_controller` picks one from the run's `ControllerTarget`. Neither adapter is
imported until a child opens it, so the supervisor (which imports only `model` and the
target) never loads grpc or the HTTP client.
"""
