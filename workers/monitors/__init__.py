"""Children that watch the controller and record what it reports, one JSONL file each."""
