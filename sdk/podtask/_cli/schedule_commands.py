"""`podtask schedules create|list|get|update|activate|deactivate|delete`, through the API.

What they accept is `cli_parser`'s, what they print `cli_output`'s (a table, a schedule's
details, `-o json`: the schedule as the API answers it); `cli.py` runs them with the client
and turns an API error into exit code 1.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from podtask._cli.cli_output import (
    listed,
    pretty_json,
    schedule_change,
    schedule_details,
    schedules_table,
)
from podtask._cli.cli_parser import output_format

if TYPE_CHECKING:
    from podtask.client import PodtaskClient


def schedules(client: PodtaskClient, args: argparse.Namespace) -> int:
    command = args.schedules_command
    as_json = output_format(args) == "json"
    if command == "list":
        found = client.list_schedules(task=args.task, type=args.type, active=args.active)
        print(pretty_json(listed(found)) if as_json else schedules_table(found))
        return 0
    if command == "create":
        schedule = client.create_schedule(
            args.task,
            args.cron,
            timezone=args.timezone,
            external_id=args.external_id,
            deduplication_key=args.deduplication_key,
            active=args.active,
        )
        # The id alone on stdout, for scripts (`ID=$(podtask schedules create …)`).
        print(pretty_json(schedule) if as_json else schedule["id"])
        return 0
    if command == "get":
        schedule = client.get_schedule(args.schedule_id)
        print(pretty_json(schedule) if as_json else schedule_details(schedule))
        return 0
    if command == "update":
        schedule = client.update_schedule(
            args.schedule_id,
            task=args.task,
            cron=args.cron,
            timezone=args.timezone,
            external_id=args.external_id,
        )
    elif command == "activate":
        schedule = client.activate_schedule(args.schedule_id)
    elif command == "deactivate":
        schedule = client.deactivate_schedule(args.schedule_id)
    else:
        schedule = client.delete_schedule(args.schedule_id)
    print(pretty_json(schedule) if as_json else schedule_change(schedule, command))
    return 0
