"""What a stream costs in memory, by transport: measured, declared once, checked against the units.

PSS in MiB of one stream child and everything under it (its follower: the forked log-service
follower, an ssh client, the local cluster's `logs`), as bench/stream_memory.py measures it
over 128 workers of a fake controller (iris_log), 128 loopback ssh hosts (ssh) and the embedded
cluster (local); gcloud's by bench/gcp_stream_memory.py (an ssh client and its share of the
host's multiplexed master; no gcloud process stays alive). Each figure is the measured maximum
rounded up with some room. tests/streams/test_stream_memory.py runs the bench as a smoke and
fails if a measurement exceeds its figure, and checks that the units' `MemoryMax` holds
`max_streams` (its default) streams of the dearest transport beside the rest of a run.
"""

from workers.transports import TransportKind

STREAM_PSS_MIB: dict[TransportKind, float] = {
    TransportKind.IRIS_LOG: 8.0,
    TransportKind.SSH: 6.0,
    TransportKind.GCLOUD_VM: 6.0,
    TransportKind.GCLOUD_TPU: 6.0,
    TransportKind.LOCAL: 16.0,
}
# Everything of a run but its streams (supervisor, discovery, monitors, tests child, cluster
# child): about 70 MiB PSS at rest (tests/run/test_hostile_controller.py), and each child
# reading a reply may add its cap (32 MiB) while it does.
RUN_BASE_PSS_MIB = 300.0
