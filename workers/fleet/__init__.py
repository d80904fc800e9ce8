"""The fleet child (`workers.fleet:main`): read-only checks of the cluster, judged in `checks.py`."""

from workers.fleet.runner import main

__all__ = ["main"]
