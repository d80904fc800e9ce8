"""monitor:autoscaler: what the autoscaler wants, has and did, as data and as events.

args: controller, out (path of autoscaler.jsonl), interval_s (default 1).

Every poll of GetAutoscalerStatus appends one line to `out`: the groups with their demand,
slices and VM states, the unmet demand, and the actions that are new since the previous
poll (`new_actions`; the controller repeats its last 100 actions in every reply, and
copying them into every line would grow the file by that much each second). Each new
action is logged once as `autoscaler_action`; each change of the unmet demand as
`unmet_demand`. A PROGRESS message with counts goes to the supervisor now and then.
"""

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grpc

from common.child_exit import ChildExit
from common.messages import Kind
from iris_smoke_api.v1 import controller_pb2
from workers import controller_client as cc
from workers.monitors._jsonl import JsonlWriter, SecondWriterError
from workers.runtime import ChildContext

AUTOSCALER_INTERVAL_S = 1.0
PROGRESS_EVERY_S = 10.0
MAX_LOGGED_UNMET = 20

ActionKey = tuple[str, str, str, str, str, str]
UnmetKey = tuple[str, int, str, str]


def action_record(action: controller_pb2.AutoscalerAction) -> dict[str, Any]:
    return {
        "timestamp": cc.rfc3339(action.timestamp),
        "action_type": action.action_type,
        "scale_group": action.scale_group,
        "slice_id": action.slice_id,
        "reason": action.reason,
        "status": action.status,
    }


def _action_key(r: dict[str, Any]) -> ActionKey:
    # No id in the API: the whole record identifies an action (timestamps have nanoseconds).
    return (str(r["timestamp"]), r["action_type"], r["scale_group"], r["slice_id"], r["reason"], r["status"])


def group_record(group: controller_pb2.ScaleGroupStatus) -> dict[str, Any]:
    config = group.config
    return {
        "name": group.name,
        "config": {
            "min_slices": config.min_slices,
            "max_slices": config.max_slices,
            "accelerator_type": cc.accelerator_name(config.accelerator_type),
            "accelerator_variant": config.accelerator_variant,
            "num_vms": config.num_vms,
        },
        "current_demand": group.current_demand,
        "peak_demand": group.peak_demand,
        "backoff_until": cc.rfc3339(group.backoff_until),
        "consecutive_failures": group.consecutive_failures,
        "slice_state_counts": dict(group.slice_state_counts),
        "slices": [
            {
                "slice_id": s.slice_id,
                "created_at": cc.rfc3339(s.created_at),
                "vms": [
                    {
                        "vm_id": vm.vm_id,
                        "state": cc.vm_state_name(vm.state),
                        "address": vm.address,
                        "worker_id": vm.worker_id,
                    }
                    for vm in s.vms
                ],
            }
            for s in group.slices
        ],
    }


def unmet_record(unmet: controller_pb2.UnmetDemand) -> dict[str, Any]:
    return {
        "job_id": unmet.job_id,
        "tasks": unmet.tasks,
        "scale_group": unmet.scale_group,
        "reason": unmet.reason,
    }


def status_record(
    reply: controller_pb2.GetAutoscalerStatusResponse, new_actions: list[dict[str, Any]]
) -> dict[str, Any]:
    """The JSON form of one reply (also what diagnostics.json embeds, with all its actions)."""
    return {
        "timestamp": cc.utc_now(),
        "current_demand": reply.current_demand,
        "groups": [group_record(g) for g in reply.groups],
        "unmet_demand": [unmet_record(u) for u in reply.unmet_demand],
        "new_actions": new_actions,
    }


class AutoscalerMonitor:
    def __init__(self, ctx: ChildContext) -> None:
        self.ctx = ctx
        # Keys of the actions in the previous reply: the controller's list is bounded, so
        # this set is too, and an action that dropped off its end never comes back.
        self._seen: set[ActionKey] = set()
        self._unmet: frozenset[UnmetKey] = frozenset()
        self.actions_seen = 0
        self.scale_ups = 0

    def new_actions(self, actions: Iterable[controller_pb2.AutoscalerAction]) -> list[dict[str, Any]]:
        records = [action_record(a) for a in actions]
        keys = [_action_key(r) for r in records]
        fresh = [r for r, k in zip(records, keys, strict=True) if k not in self._seen]
        self._seen = set(keys)
        for r in fresh:
            self.ctx.log.info(
                "autoscaler_action", **{k: v for k, v in r.items() if k != "timestamp"}, at=r["timestamp"]
            )
            self.actions_seen += 1
            self.scale_ups += r["action_type"] == "scale_up"
        return fresh

    def check_unmet(self, unmet: Iterable[controller_pb2.UnmetDemand]) -> None:
        records = [unmet_record(u) for u in unmet]
        keys = frozenset((r["job_id"], r["tasks"], r["scale_group"], r["reason"]) for r in records)
        if keys != self._unmet:
            self.ctx.log.info("unmet_demand", count=len(records), entries=records[:MAX_LOGGED_UNMET])
            self._unmet = keys

    def counts(self, reply: controller_pb2.GetAutoscalerStatusResponse) -> dict[str, Any]:
        return {
            "current_demand": reply.current_demand,
            "slices": sum(len(g.slices) for g in reply.groups),
            "unmet_demand": len(reply.unmet_demand),
            "actions": self.actions_seen,
            "scale_ups": self.scale_ups,
        }


def main(ctx: ChildContext) -> int:
    interval_s = float(ctx.args.get("interval_s", AUTOSCALER_INTERVAL_S))
    try:
        out = JsonlWriter(Path(ctx.args["out"]))
    except (OSError, SecondWriterError) as exc:
        ctx.log.error("monitor_output_unusable", path=str(ctx.args["out"]), error=str(exc))
        return ChildExit.CONFIG
    monitor, outage = AutoscalerMonitor(ctx), cc.outage_for(ctx)
    reply: controller_pb2.GetAutoscalerStatusResponse | None = None
    next_progress = time.monotonic() + PROGRESS_EVERY_S
    with out, cc.connect(str(ctx.args["controller"])) as conn:
        for _ in cc.poll_every(ctx, interval_s):
            try:
                reply = conn.stub.GetAutoscalerStatus(
                    controller_pb2.GetAutoscalerStatusRequest(), timeout=cc.rpc_timeout(ctx.deadline)
                )
            except grpc.RpcError as exc:
                cc.rpc_failed(ctx, outage, "autoscaler_poll_failed", exc)
                continue
            cc.rpc_succeeded(ctx, outage)
            out.write(status_record(reply, monitor.new_actions(reply.recent_actions)))
            monitor.check_unmet(reply.unmet_demand)
            if out.records == 1:
                ctx.channel.send(Kind.READY, out=str(out.path))
            if time.monotonic() >= next_progress:
                ctx.channel.send(Kind.PROGRESS, **monitor.counts(reply), lines=out.records)
                next_progress = time.monotonic() + PROGRESS_EVERY_S
        if reply is not None:
            ctx.channel.send(Kind.STATS, **monitor.counts(reply), lines=out.records)
    ctx.log.info("autoscaler_monitor_stopped", reason=ctx.stop.reason or "deadline", lines=out.records)
    return ChildExit.OK
