"""When a controller is known gone: a missing or dead private socket always; a refused TCP
connection only on a cluster the run started itself; anything that accepts, never."""

import socket
from pathlib import Path

from common.controller_target import ApiKind, ControllerTarget
from common.ports import free_port
from workers.controller.gone import gone_reason


def _iris(port: int) -> ControllerTarget:
    return ControllerTarget(ApiKind.IRIS, f"http://127.0.0.1:{port}", "g")


def test_a_refused_tcp_controller_is_gone_only_on_a_cluster_the_run_owns() -> None:
    port = free_port()
    assert gone_reason(_iris(port), owned=True) == f"connection to 127.0.0.1:{port} refused"
    assert gone_reason(_iris(port), owned=False) == "", "a tunnel or a standing controller may come back"
    with socket.create_server(("127.0.0.1", 0)) as server:
        assert gone_reason(_iris(server.getsockname()[1]), owned=True) == ""


def test_an_embedded_socket_missing_or_refusing_is_gone_whoever_started_it(tmp_path: Path) -> None:
    path = tmp_path / "controller.sock"
    target = ControllerTarget(ApiKind.EMBEDDED, f"unix:{path}", "g")
    assert gone_reason(target, owned=False) == f"socket {path} is gone"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert gone_reason(target, owned=False) == f"nothing accepts on socket {path}", "bound, not listening"
        server.listen()
        assert gone_reason(target, owned=False) == ""
