"""`JsonBodyCheck`: every JSON request body is read and checked here before FastAPI parses it.

FastAPI parses with Python's `json`, which takes what JSON does not (NaN, Infinity,
surrogates escaped alone, bytes that are not UTF-8) and recurses (about 1,000 levels
deep it fails); what it lets through could then break a later step (encoding, pydantic's
serializer, the cluster) with a 500. So the body is checked once, for every endpoint and
every field at once: strict UTF-8, JSON without NaN or Infinity, objects and arrays at
most `MAX_BODY_DEPTH` deep, no lone surrogate in a string or a key, integers within int64
and every number finite. A body that fails is a 400 (`invalid_json`: not UTF-8, not JSON)
or a 422 (`invalid_request`, naming the path of the first bad value), in the API's error
shape. Fields then apply their own limits (a payload's depth and size: `stored_json`).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from podtask._contract.json_values import JsonProblem, json_problem, may_have_problem, nesting_depth
from podtask._contract.limits import MAX_JSON_DEPTH
from podtask_api.errors import ApiError, error_response

# A value may nest MAX_JSON_DEPTH levels; the request around it adds a few (a batch's
# `{"items": [{"options": {"metadata": …}}]}` four).
MAX_BODY_DEPTH = MAX_JSON_DEPTH + 4

_METHODS_WITH_BODIES = frozenset({"POST", "PUT", "PATCH"})


class _NotJsonConstant(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJsonConstant(name)


def _invalid_json(message: str) -> ApiError:
    return ApiError(400, "invalid_json", f"the request body is not valid JSON: {message}")


def _invalid_value(problem: JsonProblem) -> ApiError:
    field = problem.path or "body"
    return ApiError(
        422,
        "invalid_request",
        f"invalid {field} — {problem.message}",
        [{"field": field, "message": problem.message, "type": problem.kind}],
    )


def _too_deep(path: str = "") -> ApiError:
    return _invalid_value(
        JsonProblem(
            path,
            f"objects and arrays nest deeper than {MAX_BODY_DEPTH} levels in the body; "
            f"a payload, metadata or output may nest at most {MAX_JSON_DEPTH}",
            "too_deep",
        )
    )


def body_problem(body: bytes) -> ApiError | None:
    """Why this request body cannot be taken, or None. Pure."""
    if not body.strip():
        return None  # no body: the route says whether it needs one
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ApiError(
            400,
            "invalid_json",
            f"the request body is not UTF-8 (byte 0x{body[exc.start]:02x} at offset "
            f"{exc.start}): send JSON encoded as UTF-8",
        )
    deep = nesting_depth(text, stop_after=MAX_BODY_DEPTH) > MAX_BODY_DEPTH
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        return _invalid_json(str(exc))
    except _NotJsonConstant as exc:
        return _invalid_json(f"{exc} is not a JSON number; send null, a number or a string")
    except RecursionError:
        return _too_deep()
    except ValueError as exc:  # an integer of more digits than Python converts
        return _invalid_value(JsonProblem("", f"a number is out of range: {exc}", "number"))
    if deep or may_have_problem(text):
        problem = json_problem(value, max_depth=MAX_BODY_DEPTH)
        if problem is not None:
            return (
                _too_deep(problem.path) if problem.kind == "too_deep" else _invalid_value(problem)
            )
    return None


def _is_json(scope: Scope) -> bool:
    """Whether FastAPI would read this request's body as JSON (as it decides that)."""
    declared: bytes | None = dict(scope.get("headers") or []).get(b"content-type")
    if declared is None:
        return True
    media = declared.split(b";")[0].strip().lower()
    subtype = media.partition(b"/")[2]
    return subtype == b"json" or subtype.endswith(b"+json")


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app `body`, read already by a middleware, then goes on."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class JsonBodyCheck:
    """Refuse a JSON body `body_problem` finds fault with; pass the rest on, replayed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _METHODS_WITH_BODIES
            or not _is_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = body_problem(body)
        if problem is not None:
            await error_response(problem)(scope, receive, send)
            return
        await self.app(scope, replaying(body, receive), send)
