"""A token this run holds reaches no log line, no message to the supervisor and no run file, even when
a controller quotes it back in an error (a misconfigured proxy echoing the request's headers)."""

import uuid
from pathlib import Path

from tests.helpers.http_stub import Stub, serving
from tests.helpers.iris import files_holding
from tests.helpers.supervisor_proc import run_argv, started

TOKEN = "tok-5f1e2d3c4b5a69788796a5b4c3d2e1f0"
RUN_EXIT_S = 60.0


class EchoingController(Stub):
    """`/health` is fine; every call is refused with an error that quotes the Authorization header."""

    def do_GET(self) -> None:
        self.answer(200, b'{"status":"ok"}', {"Content-Type": "text/plain"})

    def do_POST(self) -> None:
        self.body()
        echoed = f"bad request header: Authorization: {self.headers.get('Authorization')}"
        self.answer(400, echoed.encode(), {"Content-Type": "text/plain"})


def test_a_token_quoted_back_by_the_controller_is_redacted_everywhere(tmp_path: Path) -> None:
    run_id = f"secret-{uuid.uuid4().hex[:8]}"  # its own prefix lock, whatever else runs beside it
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    config = tmp_path / "run.toml"
    config.write_text(f'[iris]\ntoken_file = "{token_file}"\n')
    with serving(EchoingController) as url:
        argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", url, "--config", str(config),
                        "--tests", "simple", "--timeout", "30", "--discovery-interval", "1")  # fmt: skip
        with started(argv, tmp_path, run_id) as sup:
            code = sup.wait_exit(RUN_EXIT_S)
            output = sup.output.read_text()
    assert code != 0, output[-2000:]
    events = (sup.run_dir / "events.jsonl").read_text()
    assert "bad request header: Authorization: Bearer <redacted>" in events, events[-3000:]
    assert TOKEN not in output
    assert files_holding(sup.run_dir, TOKEN) == []
