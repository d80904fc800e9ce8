"""results.json matches its published JSON Schema and junit.xml the strict Ant JUnit schema, on a real run."""

import json
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema

from common.outcome import FailureReason, Outcome
from supervisor.children import ChildState
from supervisor.config import ClusterKind
from supervisor.verdict import SCHEMA_VERSION
from tests.helpers.supervisor_proc import REPO_ROOT, run_argv, started

RESULTS_SCHEMA = json.loads((REPO_ROOT / "docs" / "results.schema.json").read_text())
JUNIT_XSD = REPO_ROOT / "tests" / "schemas" / "junit-ant-strict.xsd"
CONFIG = """
[[tests]]
name = "exits-one"
argv = ["sh", "-c", "echo about to fail; echo the-last-words; exit 1"]
"""


def _xmllint(path: Path) -> subprocess.CompletedProcess[str]:
    xmllint = shutil.which("xmllint")
    assert xmllint, "xmllint is missing: install Debian's libxml2-utils (apt-get install libxml2-utils)"
    argv = [xmllint, "--noout", "--schema", str(JUNIT_XSD), str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def test_the_schema_names_every_outcome_reason_state_and_kind_the_code_has() -> None:
    defs = RESULTS_SCHEMA["$defs"]
    assert set(defs["outcome"]["enum"]) == {o.value for o in Outcome}
    assert set(defs["failure_reason"]["enum"]) == {r.value for r in FailureReason}
    assert set(defs["child"]["properties"]["state"]["enum"]) == {s.value for s in ChildState}
    assert set(RESULTS_SCHEMA["properties"]["cluster"]["properties"]["kind"]["enum"]) == {k.value for k in ClusterKind}
    assert RESULTS_SCHEMA["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def test_a_real_failing_run_writes_schema_valid_results_and_strict_junit(tmp_path: Path) -> None:
    run_id = f"machine-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    argv = run_argv(run_id, tmp_path / "runs", "--config", str(config), "--tests", "simple,exits-one")
    with started(argv, tmp_path, run_id) as sup:
        assert sup.wait_exit(60) == 1, sup.output.read_text()[-3000:]
        results = sup.results()
        errors = list(jsonschema.Draft202012Validator(RESULTS_SCHEMA).iter_errors(results))
        assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:3]]
        assert results["schema_version"] == SCHEMA_VERSION
        assert [t["name"] for t in results["tests"]] == ["simple", "exits-one"]
        junit = sup.run_dir / "junit.xml"
        checked = _xmllint(junit)
        assert checked.returncode == 0, checked.stderr
        suite = ET.parse(junit).getroot()
        assert suite.get("hostname") and suite.get("timestamp") == results["started_at"][:19]
        failure = suite.find("testcase[@name='exits-one']/failure")
        assert failure is not None and failure.get("type") == "failed"
        assert "the-last-words" in (suite.findtext("system-out") or "")
    # The validator is real: what junit.xml used to be (fractional timestamp, no hostname) is refused.
    old = tmp_path / "old.xml"
    old.write_text(
        '<testsuite name="iris-smoke" tests="1" failures="1" errors="0" time="1.0" '
        'timestamp="2026-11-29T07:00:00.000000Z"><properties/>'
        '<testcase classname="c" name="t" time="1"><failure message="m">x</failure></testcase></testsuite>'
    )
    refused = _xmllint(old)
    assert refused.returncode != 0 and "hostname" in refused.stderr and "timestamp" in refused.stderr
