"""A free TCP port on loopback for a program that binds the port it is told, not a socket it is handed."""

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    Racy by nature: the port is released before the program binds it, so another process can take
    it in between. The window is short and the kernel hands out ports in rotation, so a lost race
    is rare but real on a busy machine (tests running in parallel): every caller recognizes the
    program's bind failure and tries once more on a fresh port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
