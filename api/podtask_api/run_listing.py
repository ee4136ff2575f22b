"""Listing runs a page at a time: the filters, the opaque cursor, and filling one page.
(Schedules are listed the same way, with filters of their own: `ListFilters`.)

Kubernetes lists objects in name order, a chunk at a time (`limit`, `continue`), and
filters them only by label. So: the filters that have labels (task, queue, test runs or
not, parent run, schedule) become the label selector; the others (status, tag, creation
time) are applied here, on each chunk, and a page is filled from as many chunks as it
takes, up to a bound on the runs examined per request (a page may then hold fewer runs
than asked, even none, and still have a next one).

Order: run ids are named so that name order is newest first (see `run_names`), for runs
triggered without an idempotency key; runs with one have ids made from their key and
come after all others, in id order.

The cursor says where the next page starts: the Kubernetes continue token of the chunk
it starts in, and the last run already returned (skipped by name when that chunk is read
again, so that a run created meanwhile cannot shift the page and repeat or hide a run).
It also carries a digest of the filters, so that it cannot be used with others.

Everything here is pure except `list_page` and `read_chunk`, which read chunks through the
calls they are given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from podtask._contract.kube_names import is_label_value
from podtask._contract.resources import PENDING_STATUS, parse_timestamp
from podtask._contract.wire import (
    LABEL_PARENT_RUN,
    LABEL_QUEUE,
    LABEL_SCHEDULE,
    LABEL_TASK,
    LABEL_TEST,
    TEST_LABEL_VALUE,
)
from podtask_api.cluster import ListExpired, ObjectRejected
from podtask_api.errors import ApiError

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
# Runs read per chunk when filters apply here: a page of matches may take several chunks.
FILTERED_CHUNK = 250
# Runs examined per request at most; past it, the page is answered as far as it got.
MAX_EXAMINED = 5000

_CURSOR_VERSION = 1


class ListFilters(Protocol):
    """What a list's filters give its paging: the cluster's part (the label selector), the
    rest applied here (`matches`), and the digest a cursor carries."""

    def label_selector(self) -> str | None: ...

    @property
    def filters_here(self) -> bool: ...

    def digest(self) -> str: ...

    def matches(self, item: Mapping[str, Any], /) -> bool: ...


@dataclass(frozen=True)
class RunFilters:
    """What `GET /api/v1/runs` may filter on; each set filter must hold (tags: any of them)."""

    statuses: frozenset[str] = frozenset()
    task_id: str | None = None
    tags: frozenset[str] = frozenset()
    queue: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    # True: test runs only; False: no test runs; None: both.
    is_test: bool | None = None
    # The runs this run triggered (its children).
    parent_run_id: str | None = None
    # The runs this schedule triggered (its ticks').
    schedule_id: str | None = None

    def label_selector(self) -> str | None:
        """The Kubernetes label selector for the filters that have labels."""
        terms = []
        if self.task_id is not None:
            terms.append(f"{LABEL_TASK}={self.task_id}")
        if self.queue is not None and is_label_value(self.queue):
            terms.append(f"{LABEL_QUEUE}={self.queue}")
        if self.is_test is not None:
            # `!=` also selects the runs without the label: every run that is not a test.
            operator = "=" if self.is_test else "!="
            terms.append(f"{LABEL_TEST}{operator}{TEST_LABEL_VALUE}")
        if self.parent_run_id is not None:
            terms.append(f"{LABEL_PARENT_RUN}={self.parent_run_id}")
        if self.schedule_id is not None:
            terms.append(f"{LABEL_SCHEDULE}={self.schedule_id}")
        return ",".join(terms) or None

    @property
    def filters_here(self) -> bool:
        """Whether any filter is applied by the API rather than by the cluster's selector."""
        return bool(
            self.statuses
            or self.tags
            or self.created_from is not None
            or self.created_to is not None
            or (self.queue is not None and not is_label_value(self.queue))
        )

    def digest(self) -> str:
        """A short digest of the filters, which a cursor carries."""
        terms: list[Any] = [
            sorted(self.statuses),
            self.task_id,
            sorted(self.tags),
            self.queue,
            _instant(self.created_from),
            _instant(self.created_to),
            self.is_test,
        ]
        if self.parent_run_id is not None:
            # Only when set: the cursors of lists without it stay valid.
            terms.append(self.parent_run_id)
        if self.schedule_id is not None:
            terms.append({"schedule": self.schedule_id})
        canonical = json.dumps(terms)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def matches(self, run: Mapping[str, Any]) -> bool:
        """Whether `run` passes every filter (the ones the selector applied too)."""
        spec = run.get("spec") or {}
        metadata = run.get("metadata") or {}
        if self.statuses and run_status(run) not in self.statuses:
            return False
        if self.task_id is not None and spec.get("taskId") != self.task_id:
            return False
        if self.tags and not self.tags.intersection(spec.get("tags") or []):
            return False
        if self.queue is not None and (spec.get("queue") or {}).get("name") != self.queue:
            return False
        if self.is_test is not None and bool(spec.get("isTest")) != self.is_test:
            return False
        if self.parent_run_id is not None and spec.get("parentRunId") != self.parent_run_id:
            return False
        if self.schedule_id is not None and (
            (metadata.get("labels") or {}).get(LABEL_SCHEDULE) != self.schedule_id
        ):
            return False
        if self.created_from is not None or self.created_to is not None:
            created = parse_timestamp(metadata.get("creationTimestamp"))
            if created is None:
                return False
            if self.created_from is not None and created < self.created_from:
                return False
            if self.created_to is not None and created > self.created_to:
                return False
        return True


def _instant(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def run_status(run: Mapping[str, Any]) -> str:
    phase = (run.get("status") or {}).get("phase")
    return str(phase) if phase else PENDING_STATUS


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: in the chunk read with `continue_token`, after run `after`."""

    continue_token: str | None
    after: str | None
    filters: str = field(default="")

    def encode(self) -> str:
        raw = json.dumps(
            {"v": _CURSOR_VERSION, "c": self.continue_token, "a": self.after, "f": self.filters},
            separators=(",", ":"),
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def invalid_cursor(message: str) -> ApiError:
    return ApiError(
        422,
        "invalid_request",
        f"invalid cursor — {message}; pass the `nextCursor` of the previous page unchanged, "
        "with the same filters, or leave it out to start from the first page",
        [{"field": "cursor", "message": message, "type": "value_error"}],
    )


def decode_cursor(text: str, filters: ListFilters) -> Cursor:
    """The cursor `text`, made by `Cursor.encode` for these filters; a 422 otherwise."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw)
    except (ValueError, binascii.Error):
        raise invalid_cursor("it is not a cursor this API made") from None
    if not isinstance(data, dict) or data.get("v") != _CURSOR_VERSION:
        raise invalid_cursor("it is not a cursor this API made")
    token, after, digest = data.get("c"), data.get("a"), data.get("f")
    if not all(isinstance(value, str | None) for value in (token, after)) or not isinstance(
        digest, str
    ):
        raise invalid_cursor("it is not a cursor this API made")
    if digest != filters.digest():
        raise invalid_cursor("it was made for other filters")
    return Cursor(continue_token=token, after=after, filters=digest)


@dataclass(frozen=True)
class Chunk:
    """One chunk of a Kubernetes list: runs in name order, and the token of the next."""

    items: Sequence[Mapping[str, Any]]
    continue_token: str | None


def read_chunk(
    list_chunk: Callable[[str | None, int, str | None], Mapping[str, Any]],
    selector: str | None,
    size: int,
    token: str | None,
) -> Chunk:
    """One chunk of a list, read by `list_chunk` (the cluster's list of one kind: selector,
    limit, continue token): a continue token the cluster does not take is a 422 on the
    cursor, one too old to go on from a 410."""
    try:
        listed = list_chunk(selector, size, token)
    except ObjectRejected:
        if token is None:
            raise
        raise invalid_cursor("the cluster does not take it") from None
    except ListExpired:
        raise ApiError(
            410,
            "cursor_expired",
            "the cursor is too old for the cluster to go on from; list from the first page again",
        ) from None
    return Chunk(listed.get("items") or [], (listed.get("metadata") or {}).get("continue"))


Fetch = Callable[[str | None, int, str | None], Awaitable[Chunk]]
"""Reads one chunk: (label selector, limit, continue token) → the chunk."""


@dataclass(frozen=True)
class Page:
    runs: list[Mapping[str, Any]]
    next_cursor: Cursor | None


def _name(run: Mapping[str, Any]) -> str:
    return str((run.get("metadata") or {}).get("name") or "")


async def list_page(fetch: Fetch, filters: ListFilters, limit: int, cursor: Cursor | None) -> Page:
    """Up to `limit` objects (runs, or schedules) that pass `filters`, from where `cursor`
    says, and the next cursor."""
    digest = filters.digest()
    token = cursor.continue_token if cursor else None
    after = cursor.after if cursor else None
    chunk_size = FILTERED_CHUNK if filters.filters_here else limit
    runs: list[Mapping[str, Any]] = []
    examined = 0
    while True:
        chunk = await fetch(filters.label_selector(), chunk_size, token)
        for position, run in enumerate(chunk.items):
            name = _name(run)
            if after is not None and name <= after:
                continue  # returned by an earlier page
            examined += 1
            if filters.matches(run):
                runs.append(run)
            if len(runs) == limit or (examined >= MAX_EXAMINED and runs):
                if position + 1 < len(chunk.items):
                    return Page(runs, Cursor(token, name, digest))
                if chunk.continue_token:
                    return Page(runs, Cursor(chunk.continue_token, None, digest))
                return Page(runs, None)
        if not chunk.continue_token:
            return Page(runs, None)
        token, after = chunk.continue_token, None
        if examined >= MAX_EXAMINED:
            return Page(runs, Cursor(token, None, digest))
