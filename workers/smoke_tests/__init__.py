"""The tests child (`workers.smoke_tests:main`): the suite in `suite.py`, the run in `runner.py`."""

from workers.smoke_tests.runner import main

__all__ = ["main"]
