"""Linux process controls that the standard library does not wrap (prctl)."""

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36

# The interpreter's own symbols, libc's among them. `ctypes.util.find_library("c")` would import
# tempfile and subprocess and fork `ldconfig -p` in every process that imports this module: every
# child, every VM host of the local cluster.
_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg: int) -> None:
    if _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def set_parent_death_signal(sig: signal.Signals) -> None:
    """Ask the kernel to send `sig` when the thread that forked us exits."""
    _prctl(PR_SET_PDEATHSIG, int(sig))


def set_child_subreaper() -> None:
    """Orphaned descendants are re-parented to this process instead of init."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def set_process_name(name: str) -> None:
    """The kernel's comm name (15 bytes), what `ps -o comm` and `top` show."""
    buf = ctypes.create_string_buffer(name.encode()[:15])
    _libc.prctl(PR_SET_NAME, buf, 0, 0, 0)
