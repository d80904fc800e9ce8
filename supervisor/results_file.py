"""`results.json` read back: the `RunResult` the run wrote (supervisor/run_result.py), nothing else.

Read once, at the edge (from a run's own verdict, or from a file someone handed `show`, `report`,
the history page or the canary) with the one typed reader, `run_result.from_json_object`: a file
of the wrong shape is one line naming the file and the field (`results.json: tests[0].duration_s:
expected float, got str`), and the views never meet a dict.
"""

from pathlib import Path

from common.jsonshape import JsonObject, ShapeError
from supervisor.run_files import RESULTS_MAX_BYTES, FileField, RunDirError, read_json
from supervisor.run_result import RunResult, from_json_object

RESULTS_NAME = "results.json"


def parse(top: FileField) -> RunResult:
    """The RunResult in the JSON value of a results.json; RunDirError naming the field if it is not one."""
    if not isinstance(top.value, dict):
        raise top.mismatch("an object (an iris-smoke verdict)")
    try:
        return from_json_object(top.value)
    except ShapeError as exc:
        raise RunDirError(f"{top.method}: {exc}") from None


def from_verdict(results: JsonObject) -> RunResult:
    """The run's own verdict (`as_json`), read as any results.json is: the views see what the file says."""
    return parse(FileField(RESULTS_NAME, "", results))


def read_results(run_dir: Path) -> RunResult:
    """The results.json of `run_dir`, read with a cap and checked; RunDirError (one line) otherwise."""
    top = read_json(run_dir / RESULTS_NAME, RESULTS_MAX_BYTES)
    if top is None:
        raise RunDirError(f"{run_dir}: no {RESULTS_NAME}; is it a run directory?")
    try:
        return parse(top)
    except RunDirError as exc:
        raise RunDirError(f"{run_dir}/{exc}") from None
