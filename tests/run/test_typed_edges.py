"""`dict[str, Any]` only at the edges where JSON or TOML arrives from outside, each read once into a
type (issue 20; README "How it is built": typed messages back). JSON the project builds is a
dataclass through common/jsonshape.py, or `JsonObject`."""

from tests.helpers.supervisor_proc import REPO_ROOT

# Each an edge: what it reads, and where it becomes a type.
EDGES = {
    "common/toml_table.py": "a config file's TOML, read into Table",
    "local_cluster/config.py": "the embedded cluster's config file, read into ClusterConfig",
    "workers/gcp/inventory.py": "gcloud's JSON listings, read into Resource",
    "workers/controller/iris_child.py": "a Connect reply in a task, standard library only",
    "supervisor/canary/latency.py": "a run's scheduling.jsonl, read into latencies",
}
DIRS = ("supervisor", "workers", "common", "local_cluster", "iris_smoke")


def test_dict_str_any_only_at_the_edges() -> None:
    found = [
        f"{path.relative_to(REPO_ROOT)}:{n}: {line.strip()}"
        for d in DIRS
        for path in sorted((REPO_ROOT / d).rglob("*.py"))
        if not path.name.endswith("_pb2.py") and str(path.relative_to(REPO_ROOT)) not in EDGES
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "dict[str, Any]" in line
    ]
    assert not found, "\n".join(found)
