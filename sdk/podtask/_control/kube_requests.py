"""The requests the control plane sends to the Kubernetes API, as its metrics count them: each
one's Kubernetes verb and resource (`kube_request`, pure: the rules kube-apiserver's own
request info follows), and the hook that reports every request of a client with its answer's
code (`report_requests`).

The hook sits on the official client's REST layer, below the API's own call layer (the
operator's `Kube` reports its requests itself): every HTTP request is reported once, a retried
call once per try, a watch when its response begins. Both components report into their own
`podtask_kube_requests_total`.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

# The code label of a request that got no HTTP answer (refused, reset, timed out).
NO_ANSWER = "error"
# A namespace's own subresources: `/api/v1/namespaces/{name}/status` is not a resource `status`
# of namespace `{name}` (kube-apiserver's RequestInfoFactory has the same exception).
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class KubeRequest:
    verb: str  # get, list, watch, create, update, patch, delete, deletecollection, or the method
    resource: str  # e.g. "pods", "taskruns/status", "pods/log"; "" for a path of no resource


def kube_request(
    method: str, url: str, query_params: Iterable[tuple[str, Any]] = ()
) -> KubeRequest:
    """The verb and resource of a request to a Kubernetes API URL (or path); `query_params`:
    what older clients send besides the URL's own query."""
    parts = urllib.parse.urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    query = [*urllib.parse.parse_qsl(parts.query), *query_params]
    watching = any(k == "watch" and str(v).lower() in ("true", "1") for k, v in query)
    if segments[:1] == ["api"]:
        rest = segments[2:]  # after /api/{version}
    elif segments[:1] == ["apis"]:
        rest = segments[3:]  # after /apis/{group}/{version}
    else:
        return KubeRequest(method.lower(), "")
    if rest[:1] == ["watch"]:  # the deprecated /watch/ paths
        watching, rest = True, rest[1:]
    if rest[:1] == ["namespaces"] and len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
        rest = rest[2:]
    if not rest:
        return KubeRequest(method.lower(), "")
    resource = rest[0] if len(rest) < 3 else f"{rest[0]}/{rest[2]}"
    named = len(rest) > 1
    method = method.upper()
    if method == "GET":
        verb = "watch" if watching else "get" if named else "list"
    elif method == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = _VERBS.get(method, method.lower())
    return KubeRequest(verb, resource)


Report = Callable[[KubeRequest, str], None]
Client = TypeVar("Client")


def _answer_code(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    return str(status) if isinstance(status, int) and status > 0 else NO_ANSWER


def report_requests(api_client: Client, report: Report) -> Client:
    """Make `api_client` (a `kubernetes.client.ApiClient`) call `report(request, code)` for each
    HTTP request it sends; `api_client` itself, for chaining. Idempotent."""
    rest: Any = getattr(api_client, "rest_client")  # noqa: B009 (any client with one)
    if getattr(rest.request, "_podtask_reported", False):
        return api_client
    send = rest.request

    @functools.wraps(send)
    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        what = kube_request(method, url, kwargs.get("query_params") or ())
        try:
            response = send(method, url, *args, **kwargs)
        except Exception as exc:
            # Older clients raise ApiException for an error status; any other failure had no
            # answer at all.
            report(what, _answer_code(exc))
            raise
        status = getattr(response, "status", None)
        report(what, str(status) if status else NO_ANSWER)
        return response

    request._podtask_reported = True  # type: ignore[attr-defined]
    rest.request = request
    return api_client
