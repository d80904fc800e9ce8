"""monitor:autoscaler: what the autoscaler wants, has and did, as data and as events.

args: `workers.child_args.MonitorArgs` (target, out: autoscaler.jsonl, interval_s).

Every poll of GetAutoscalerStatus appends one line to `out`: the groups with their demand,
slices and VM states, the unmet demand, and the actions that are new since the previous
poll (`new_actions`; the controller repeats its last 100 actions in every reply, and
copying them into every line would grow the file by that much each second). Each new
action is logged once as `autoscaler_action`; each change of the unmet demand as
`unmet_demand`. A PROGRESS message with counts goes to the supervisor now and then.
"""

import time
from collections.abc import Iterable

from common.child_exit import ChildExit
from common.jsonshape import Json, JsonObject, to_json_object
from workers.child_args import MonitorArgs
from workers.controller import polling
from workers.controller.model import Action, AutoscalerStatus, ControllerError, GroupStatus, Unmet
from workers.controller.timefmt import utc_now
from workers.messages import AutoscalerProgress, AutoscalerStats, MonitorReady
from workers.monitors._jsonl import open_monitor_output
from workers.runtime import ChildContext

PROGRESS_EVERY_S = 10.0
MAX_LOGGED_UNMET = 20

ActionKey = tuple[str, str, str, str, str, str]


def action_record(action: Action) -> JsonObject:
    return to_json_object(action)


def _action_key(a: Action) -> ActionKey:
    # No id in the API: the whole record identifies an action.
    return (str(a.timestamp), a.action_type, a.scale_group, a.slice_id, a.reason, a.status)


def group_record(group: GroupStatus) -> JsonObject:
    return to_json_object(group)


def unmet_record(unmet: Unmet) -> JsonObject:
    return to_json_object(unmet)


def status_record(status: AutoscalerStatus, new_actions: list[Json]) -> JsonObject:
    """The JSON form of one reply (also what diagnostics.json embeds, with all its actions)."""
    return {
        "timestamp": utc_now(),
        "current_demand": status.current_demand,
        "groups": [group_record(g) for g in status.groups],
        "unmet_demand": [unmet_record(u) for u in status.unmet],
        "new_actions": new_actions,
    }


class AutoscalerMonitor:
    def __init__(self, ctx: ChildContext) -> None:
        self.ctx = ctx
        # Keys of the actions in the previous reply: the controller's list is bounded, so
        # this set is too, and an action that dropped off its end never comes back.
        self._seen: set[ActionKey] = set()
        self._unmet: frozenset[Unmet] = frozenset()
        self.actions_seen = 0
        self.scale_ups = 0

    def new_actions(self, listed: Iterable[Action]) -> list[Json]:
        actions = list(listed)
        records = [action_record(a) for a in actions]
        keys = [_action_key(a) for a in actions]
        fresh = [r for r, k in zip(records, keys, strict=True) if k not in self._seen]
        self._seen = set(keys)
        for r in fresh:
            self.ctx.log.info(
                "autoscaler_action", **{k: v for k, v in r.items() if k != "timestamp"}, at=r["timestamp"]
            )
            self.actions_seen += 1
            self.scale_ups += r["action_type"] == "scale_up"
        return list(fresh)

    def check_unmet(self, unmet: Iterable[Unmet]) -> None:
        keys = frozenset(unmet)
        if keys != self._unmet:
            records = [unmet_record(u) for u in keys]
            self.ctx.log.info("unmet_demand", count=len(records), entries=records[:MAX_LOGGED_UNMET])
            self._unmet = keys

    def counts(self, status: AutoscalerStatus) -> dict[str, int]:
        return {
            "current_demand": status.current_demand,
            "slices": sum(len(g.slices) for g in status.groups),
            "unmet_demand": len(status.unmet),
            "actions": self.actions_seen,
            "scale_ups": self.scale_ups,
        }


def main(ctx: ChildContext) -> int:
    args: MonitorArgs = ctx.args
    out = open_monitor_output(ctx)
    if out is None:
        return ChildExit.CONFIG
    monitor, outage = AutoscalerMonitor(ctx), polling.outage_for(ctx)
    reply: AutoscalerStatus | None = None
    next_progress = time.monotonic() + PROGRESS_EVERY_S
    with out, polling.connect(ctx) as controller:
        for _ in polling.poll_every(ctx, args.interval_s):
            try:
                reply = controller.autoscaler()
            except ControllerError as exc:
                polling.call_failed(ctx, outage, "autoscaler_poll_failed", exc)
                continue
            polling.call_succeeded(ctx, outage)
            out.write(status_record(reply, monitor.new_actions(reply.actions)))
            monitor.check_unmet(reply.unmet)
            if out.records == 1:
                ctx.channel.send(MonitorReady(str(out.path)))
            if time.monotonic() >= next_progress:
                ctx.channel.send(AutoscalerProgress(**monitor.counts(reply), lines=out.records))
                next_progress = time.monotonic() + PROGRESS_EVERY_S
        if reply is not None:
            ctx.channel.send(AutoscalerStats(**monitor.counts(reply), lines=out.records))
    ctx.log.info("autoscaler_monitor_stopped", reason=ctx.stop.reason or "deadline", lines=out.records)
    return ChildExit.OK
