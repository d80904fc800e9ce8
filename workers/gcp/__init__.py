"""The GCP provider: a cluster of TPU slices and VMs found with `gcloud` by their labels.

- `settings`: the `[gcp]` section, frozen; label and name rules derived from the prefix.
- `gcloud`: every gcloud call (argv logged, a timeout, stderr kept for the failure event).
- `inventory`: what `gcloud … list --format=json` says exists (slices with their host count,
  instances, the controller).
- `ssh_target`: one `gcloud … ssh --dry-run` per host, parsed into the ssh we run ourselves.
- `discovery`, `cluster` (the tunnel to the controller), `cleanup`: the three children.
"""
