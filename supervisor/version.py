"""The version of iris-smoke, read once from the installed package's metadata.

pyproject.toml is the one place the version is written; everything that reports it
(`--version`, `run_started`, `results.json`, `summary.md`, `report.html`, the canary's
`iris_smoke_build_info`) imports it from here.
"""

from importlib import metadata

DISTRIBUTION = "iris-smoke"


def _installed_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        # A source tree run without `pip install`: say so rather than invent a number.
        return "0+unknown"


VERSION = _installed_version()
