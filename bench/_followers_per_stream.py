"""`python -m supervisor` with every Iris stream forking a follower of its own, as before the run's one
log reader: only for bench/stream_memory.py's side by side (`--compare-followers`), not a mode of the
product. The Iris backends are patched here so that a run starts no log reader and its transport names
none; a stream child then takes the follower path it still takes when started without a reader.
"""

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from supervisor.backends import iris
from supervisor.cli import main

_with_reader = iris.iris_log_transport
iris.iris_log_transport = lambda run: dataclasses.replace(_with_reader(run), reader="")
iris.IrisBackend.log_reader = lambda _self, _run: None

if __name__ == "__main__":
    sys.exit(main())
