"""`RunMetadata`: the metadata of the run an attempt runs, as its task reads and changes it.

One object per attempt, `ctx.metadata` (and what `podtask.metadata` works on): a read-only
`Mapping` of the current document (the trigger's metadata, or what an earlier attempt left),
and the changes of Trigger.dev's `metadata` (`set`, `delete`, `increment`, `decrement`,
`append`, `remove`; each returns the object, so they chain). A change is checked before it
is made: a value that is not JSON, or a document over `MAX_RUN_METADATA_BYTES`, raises and
leaves the document as it was. What is read is a copy: changing it changes nothing.

Thread-safe: one lock guards the document, so threads of the task may change it at once.
The runner watches it (`watch`) and sends it to the API (`podtask_runner.metadata_shipping`);
`flush` asks that the latest be sent now. Pure otherwise: no I/O here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from podtask._contract.run_metadata import metadata_text

Number = int | float


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class RunMetadata(Mapping[str, Any]):
    """The run's metadata: read it as a mapping, change it with the methods."""

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._text = metadata_text(dict(initial or {}))
        self._document: dict[str, Any] = json.loads(self._text)
        self._version = 0
        self._watchers: list[Callable[[], None]] = []
        self._flusher: Callable[[], None] | None = None

    # -- reading: copies, so that changing what was read changes nothing ------------------

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            value = self._document[key]
            return json.loads(json.dumps(value)) if isinstance(value, dict | list) else value

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._document))

    def __len__(self) -> int:
        with self._lock:
            return len(self._document)

    def __repr__(self) -> str:
        return f"RunMetadata({self.current()!r})"

    def current(self) -> dict[str, Any]:
        """The whole document, as a new dict."""
        with self._lock:
            loaded: dict[str, Any] = json.loads(self._text)
            return loaded

    # -- changing ------------------------------------------------------------------------

    def set(self, key: str, value: Any) -> RunMetadata:
        """Set `key` to `value` (anything JSON holds; a pydantic model as its JSON)."""
        data = _value(key, value)
        return self._change(lambda document: {**document, key: data})

    def delete(self, key: str) -> RunMetadata:
        """Remove `key`, if it is there."""
        _check_key(key)
        return self._change(lambda document: {k: v for k, v in document.items() if k != key})

    def increment(self, key: str, by: Number = 1) -> RunMetadata:
        """Add `by` to the number under `key` (0 when absent)."""
        if not _is_number(by):
            raise TypeError(f"metadata: increment {key!r} by a number, not {by!r}")

        def add(document: dict[str, Any]) -> dict[str, Any]:
            held = document.get(key, 0)
            if not _is_number(held):
                raise TypeError(
                    f"metadata: {key!r} holds {type(held).__name__} {held!r}, not a number: "
                    "it cannot be incremented or decremented"
                )
            return {**document, key: held + by}

        _check_key(key)
        return self._change(add)

    def decrement(self, key: str, by: Number = 1) -> RunMetadata:
        """Subtract `by` from the number under `key` (0 when absent)."""
        if not _is_number(by):
            raise TypeError(f"metadata: decrement {key!r} by a number, not {by!r}")
        return self.increment(key, -by)

    def append(self, key: str, value: Any) -> RunMetadata:
        """Add `value` at the end of the list under `key`: a new list when absent; a value
        that is not a list becomes the list's first item (as Trigger.dev does)."""
        data = _value(key, value)

        def extend(document: dict[str, Any]) -> dict[str, Any]:
            held = document.get(key)
            items = [] if key not in document else held if isinstance(held, list) else [held]
            return {**document, key: [*items, data]}

        return self._change(extend)

    def remove(self, key: str, value: Any) -> RunMetadata:
        """Remove every item equal to `value` from the list under `key` (nothing else is
        touched when `key` holds no list)."""
        data = _value(key, value)

        def without(document: dict[str, Any]) -> dict[str, Any]:
            held = document.get(key)
            if not isinstance(held, list):
                return document
            return {**document, key: [item for item in held if item != data]}

        return self._change(without)

    def flush(self) -> None:
        """Send the document to the API now, and return once it was (in a task's pod;
        elsewhere there is nowhere to send it, and nothing happens). The runner sends it
        anyway, within a second of a change and before the attempt ends."""
        flusher = self._flusher
        if flusher is not None:
            flusher()

    def _change(self, edit: Callable[[dict[str, Any]], dict[str, Any]]) -> RunMetadata:
        with self._lock:
            edited = edit(self._document)
            if edited is self._document:
                return self
            # The whole document is checked (and copied, by its text) before it counts.
            text = metadata_text(edited)
            if text == self._text:
                return self
            self._document, self._text = json.loads(text), text
            self._version += 1
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher()
        return self

    # -- the runner's side -----------------------------------------------------------------

    def snapshot(self) -> tuple[int, str]:
        """The version of the document (it grows with each change) and its JSON text."""
        with self._lock:
            return self._version, self._text

    def watch(self, watcher: Callable[[], None], flusher: Callable[[], None]) -> None:
        """Call `watcher` after each change (in the thread that made it), and `flusher` for
        `flush`. The runner's shipping; one of each."""
        with self._lock:
            self._watchers = [watcher]
            self._flusher = flusher


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise TypeError(f"metadata keys are strings, not {type(key).__name__} {key!r}")


def _value(key: str, value: Any) -> Any:
    """`value` as JSON data (a model dumped, a date as ISO text), for `key`."""
    # Imported when a value is set: the runner's context holds metadata before any is.
    from podtask._authoring.trigger_options import to_json_value

    _check_key(key)
    try:
        return to_json_value(value, what=f"the metadata value of {key!r}")
    except TypeError:
        raise
    except ValueError as exc:
        raise ValueError(f"the metadata value of {key!r} cannot be sent as JSON: {exc}") from None
