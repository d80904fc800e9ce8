"""What a stream costs in memory, by transport: measured, declared once, checked against the units.

PSS in MiB of one stream child and everything under it (an ssh client, the local cluster's
`logs`) or serving it (its share of the run's one Iris log reader), as bench/stream_memory.py measures it
over 128 workers of a fake controller (iris_log), 128 loopback ssh hosts (ssh) and the embedded
cluster (local); a GCP stream's by bench/gcp_stream_memory.py (ssh too: a client and its share of
the host's multiplexed master; no gcloud process stays alive). Each figure is the measured maximum
rounded up with some room. tests/streams/test_stream_memory.py runs the bench as a smoke and
fails if a measurement exceeds its figure, and checks that the units' `MemoryMax` holds
`max_streams` (its default) streams of the dearest transport beside the rest of a run.
"""

from workers.transports import TransportKind

STREAM_PSS_MIB: dict[TransportKind, float] = {
    # child ~4.3 + its share of the run's log reader (workers/log_reader.py, one for all the run's
    # streams): measured 4.51 median, 4.62 max over 128 workers. With a follower forked per stream
    # (urllib3 and its stdlib imported after the fork), as before: 14.1 median, 14.3 max.
    # Declared at goal 6's bound, which fewer streams (a bigger share each) stay under too.
    TransportKind.IRIS_LOG: 8.0,
    # measured 5.5 over 128 hosts, 6.5 over 16, and 6.88-7.02 over 16 on a busier machine (2026-12,
    # over the 7 it was declared at); a GCP stream is ssh too, with its share of the host's
    # multiplexed master: 5.3 (bench/gcp_stream_memory.py)
    TransportKind.SSH: 8.0,
    # child and forked `logs` command: 13.6 over the embedded cluster's streams; 14.8-15.3 on a busier
    # machine (2026-12, beside five other suites), over the 15 it was declared at: 16.
    TransportKind.LOCAL: 16.0,
}
# Everything of a run but its streams (supervisor, discovery, monitors, tests child, cluster
# child): about 70 MiB PSS at rest (tests/run/test_hostile_controller.py), and each child
# reading a reply may add its cap (32 MiB) while it does.
RUN_BASE_PSS_MIB = 300.0
