"""The streams table says, per worker stream, whether its host's logs are alive (stream_no_data kept)."""

from pathlib import Path

from supervisor.reports import render_summary
from supervisor.results_file import from_verdict
from tests.report.crafted import valid_results


def test_the_summary_says_per_worker_stream_whether_its_logs_are_alive(tmp_path: Path) -> None:
    """stream_no_data kept, and shown per worker: the streams table's `logs alive` column."""
    results = valid_results()
    stream = {"vm": "worker", "host": 0, "role": "worker", "state": "exited", "starts": 1}
    results["streams"] = [
        stream | {"name": "stream:worker-a", "lines": 12, "no_data": False},
        stream | {"name": "stream:worker-b", "lines": 0, "no_data": True},
    ]
    summary = render_summary(from_verdict(results), tmp_path)
    assert "| stream:worker-a | exited | 12 | 0 | 0 | 0 | no | yes |" in summary
    assert "| stream:worker-b | exited | 0 | 0 | 0 | 0 | no | no: stream_no_data |" in summary
