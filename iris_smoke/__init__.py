"""The `iris-smoke` executable's launcher (`entry.py`): above every other package, imported by none."""
