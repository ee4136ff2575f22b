"""weekly-report: a task that runs on a schedule, every Monday at 09:00 in Paris.

As Trigger.dev's scheduled tasks: `schedule=` takes a cron expression (in UTC), or a dict
with the expression and an IANA zone, whose wall-clock times it follows across daylight
saving changes (a time the clocks skip is skipped, a time they repeat runs once).
`podtask dev` and `podtask deploy` register it as the task's TaskSchedule
(`kubectl get taskschedules`). Each tick's run gets the schedule's payload: `timestamp`
(the tick), `lastTimestamp` (the previous tick that ran, or null), `timezone`,
`scheduleId`, `externalId`, `type` and the next ticks (`upcoming`), all times in UTC.
"""

from typing import Any

from podtask import Context, task


@task(id="weekly-report", schedule={"cron": "0 9 * * 1", "timezone": "Europe/Paris"})
def weekly_report(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    # The first tick's run has no last one: the report starts from the beginning.
    since = payload.get("lastTimestamp")
    print(f"report from {since or 'the start'} to {payload['timestamp']} ({payload['timezone']})")
    return {
        "from": since,
        "to": payload["timestamp"],
        "schedule": payload["scheduleId"],
        "nextReport": (payload.get("upcoming") or [None])[0],
    }
