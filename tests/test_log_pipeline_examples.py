"""The log shipper examples in docs/examples/ name real fields and parse our real time formats.

fluent-bit and vector are not installable here (neither Debian nor PyPI packages them), so
their configs are checked structurally: Fluent Bit's classic sections, Vector's TOML and the
fields its VRL reads, against docs/log-schema.json and docs/stream-record.schema.json; and
every example's line buffer against the longest stream record the stream child writes.
syslog-ng is run for real: tests/test_log_pipeline_syslog_ng.py.
"""

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema

from common import ecs
from tests.helpers.supervisor_proc import REPO_ROOT
from workers.stream.framing import LineFramer
from workers.stream.records import RecordEncoder
from workers.stream.spec import MAX_LINE_BYTES

EXAMPLES = REPO_ROOT / "docs" / "examples"
EVENT_SCHEMA = json.loads((REPO_ROOT / "docs" / "log-schema.json").read_text())
STREAM_SCHEMA = json.loads((REPO_ROOT / "docs" / "stream-record.schema.json").read_text())
EVENT_TIME = "2026-11-29T07:00:00.123456Z"
STREAM_TIME = "2026-11-29T07:00:00.123456789Z"
# Fluent Bit's strptime conversions we use, as regular expressions (%L: fractional seconds).
_CONVERSIONS = {"%Y": r"\d{4}", "%m": r"\d{2}", "%d": r"\d{2}", "%H": r"\d{2}", "%M": r"\d{2}", "%S": r"\d{2}"}
_CONVERSIONS["%L"] = r"\d{1,9}"


def _sections(path: Path) -> list[tuple[str, dict[str, list[str]]]]:
    """Fluent Bit classic config: `[NAME]` then indented `Key Value` lines; `#` lines are comments."""
    sections: list[tuple[str, dict[str, list[str]]]] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            sections.append((line.strip("[]"), {}))
            continue
        assert raw.startswith("    "), f"{path.name}: {raw!r} is not indented under a section"
        key, _, value = line.partition(" ")
        sections[-1][1].setdefault(key, []).append(value.strip())
    return sections


def _time_regex(time_format: str) -> re.Pattern[str]:
    pattern = re.escape(time_format)
    for conversion, regex in _CONVERSIONS.items():
        pattern = pattern.replace(re.escape(conversion), regex)
    assert "%" not in pattern, f"unknown conversion in {time_format}"
    return re.compile(pattern)


def _valid_value(schema: dict[str, Any], field: str, value: str) -> None:
    jsonschema.validate(value, {"$defs": schema.get("$defs", {}), **schema["properties"][field]})


def test_fluent_bit_parsers_are_separate_not_named_json_and_use_each_schemas_time_key() -> None:
    main = _sections(EXAMPLES / "fluent-bit.conf")
    parsers = {s["Name"][0]: s for kind, s in _sections(EXAMPLES / "fluent-bit-parsers.conf") if kind == "PARSER"}
    assert "PARSER" not in [kind for kind, _ in main], "Fluent Bit refuses [PARSER] in the main classic config"
    service = next(s for kind, s in main if kind == "SERVICE")
    assert service["Parsers_File"][0].endswith("iris-smoke-parsers.conf")
    assert "json" not in parsers, "`json` is the stock parser's name"
    cases = (("iris_smoke_event", EVENT_SCHEMA, EVENT_TIME), ("iris_smoke_stream", STREAM_SCHEMA, STREAM_TIME))
    for name, schema, sample in cases:
        parser = parsers[name]
        key = parser["Time_Key"][0]
        assert key in schema["required"], f"{name}: Time_Key {key} is not a field every record has"
        _valid_value(schema, key, sample)
        assert _time_regex(parser["Time_Format"][0]).fullmatch(sample), f"{name}: {parser['Time_Format']}"
    used = {s["Parser"][0]: s for kind, s in main if "Parser" in s}
    assert set(used) == set(parsers)
    assert "events.jsonl" in used["iris_smoke_event"]["Path"][0]
    streams = used["iris_smoke_stream"]["Path"][0]
    assert "logs/vms/*.jsonl" in streams and "events.jsonl" not in streams
    journal = next(s for kind, s in main if kind == "FILTER" and s.get("Key_Name") == ["MESSAGE"])
    assert journal["Reserve_Data"] == ["On"], "the journal's _HOSTNAME and unit fields must be kept"


def test_vector_reads_only_schema_fields_with_each_schemas_time_key_and_keeps_the_host() -> None:
    config = tomllib.loads((EXAMPLES / "vector.toml").read_text())
    assert config["sources"]["iris_smoke_journal"]["type"] == "journald"
    checks = {
        "iris_smoke_events": ("event", EVENT_SCHEMA, "timestamp"),
        "iris_smoke_streams": ("record", STREAM_SCHEMA, "ts"),
    }
    for name, (var, schema, time_key) in checks.items():
        vrl = config["transforms"][name]["source"]
        fields = set(re.findall(rf"\b{var}\.([a-z_]+)", vrl))
        assert fields <= set(schema["properties"]), f"{name}: {fields - set(schema['properties'])} not in the schema"
        assert f"parse_timestamp!(string!({var}.{time_key})" in vrl
        assert not re.search(r"^\s*\.(host|_HOSTNAME)?\s*=(?!=)", vrl, re.MULTILINE), (
            "the source's host fields are kept"
        )


def test_ecs_output_names_the_host_and_version_and_has_no_empty_error_message() -> None:
    passed = ecs.to_ecs({"timestamp": EVENT_TIME, "level": "info", "event": "test_finished", "error": ""})
    assert passed["host.name"] and passed["service.version"]
    assert "error.message" not in passed
    failed = ecs.to_ecs({"timestamp": EVENT_TIME, "level": "warning", "event": "test_finished", "error": "exit 1"})
    assert failed["error.message"] == "exit 1"


# The longest stream record the stream child writes with the default max_line_bytes: every
# byte of the line a control character (escaped as \u00XX), names as long as they may be.
def _longest_stream_record() -> int:
    encoder = RecordEncoder(run_id="r" * 63, vm="v" * 63, host=999, role="worker", container="c" * 63)
    line = b"2026-11-29T07:00:00.123456789Z " + b"\x01" * (2 * MAX_LINE_BYTES) + b"\n"
    return len(encoder.encode(LineFramer(MAX_LINE_BYTES).feed(line), EVENT_TIME))


STREAM_RECORD_BOUND = 6 * MAX_LINE_BYTES + 1024  # what docs/log-pipeline.md states: 385 KiB
_SIZE = re.compile(r"(\d+)([kKmM]?)")


def _bytes(text: str) -> int:
    match = _SIZE.fullmatch(text)
    assert match, text
    return int(match[1]) << {"": 0, "k": 10, "m": 20}[match[2].lower()]


def test_every_examples_line_buffer_holds_the_longest_stream_record_the_docs_state() -> None:
    longest = _longest_stream_record()
    assert longest <= STREAM_RECORD_BOUND, f"a record of {longest} bytes: the documented bound is wrong"
    doc = (REPO_ROOT / "docs" / "log-pipeline.md").read_text()
    assert "6 \u00d7 `streams.max_line_bytes` + 1 KiB: **385 KiB**" in doc and "4096 bytes (`PIPE_BUF`)" in doc
    assert "16 KiB" in doc, "how docker splits a long line"
    streams = next(s for kind, s in _sections(EXAMPLES / "fluent-bit.conf") if s.get("Parser") == ["iris_smoke_stream"])
    assert _bytes(streams["Buffer_Max_Size"][0]) >= STREAM_RECORD_BOUND and streams["Skip_Long_Lines"] == ["On"]
    vector = tomllib.loads((EXAMPLES / "vector.toml").read_text())["sources"]["iris_smoke_stream_files"]
    assert vector["max_line_bytes"] >= STREAM_RECORD_BOUND
    sizes = re.findall(r"log-msg-size\((\d+)\)", (EXAMPLES / "syslog-ng.conf").read_text())
    assert sizes and all(int(size) >= STREAM_RECORD_BOUND for size in sizes)
