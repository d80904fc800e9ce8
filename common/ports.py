"""A free TCP port on loopback for a program that binds the port it is told, not a socket it is handed."""

import contextlib
import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    Racy by nature: the port is released before the program binds it, so another process can take
    it in between. The window is short and the kernel hands out ports in rotation, so a lost race
    is rare but real on a busy machine (tests running in parallel): every caller recognizes the
    program's bind failure and tries once more on a fresh port.
    """
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct such ports (each held while the next is chosen), racy as `free_port` is."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
