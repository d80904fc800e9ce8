"""The shared-cluster modules rely on `--dist loadgroup` keeping an `xdist_group` on one worker.

Under pytest 9 that takes the hook in tests/conftest.py (xdist 3.8 writes the group where pytest 9
no longer reads it). Were the grouping silently lost again, each worker would start its own copy
of every shared cluster: this fails instead.
"""

import os

import pytest

pytestmark = pytest.mark.xdist_group("grouping_check")


def test_a_grouped_test_runs_under_its_group_in_an_xdist_worker(request: pytest.FixtureRequest) -> None:
    # A worker runs with `dist` "no"; xdist tells it of loadgroup by this option.
    loadgroup = "PYTEST_XDIST_WORKER" in os.environ and getattr(request.config.option, "loadgroup", False)
    grouped = request.node.nodeid.endswith("@grouping_check")
    assert grouped == loadgroup, request.node.nodeid
