"""`CrossSiteRefusal`: a request that changes something, sent by a browser from another site,
is refused (403 `cross_site`) before any route sees it.

A form on another site can post to this API (a "simple" request needs no CORS preflight),
and a browser may attach what it holds for this origin. The dashboard's session cookie is
SameSite=Strict and every write with it needs the CSRF header already; this is the layer
under both, and it also covers the sign-in form and an open `podtask dev` API (no key at
all). The browser says where a request comes from: `Sec-Fetch-Site` (every current
browser), else `Origin`, compared with the `Host` the request was sent to. A client that
sends neither (curl, the Python client, a server) is not a browser on another site.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from podtask_api.errors import ApiError, error_response

_METHODS_THAT_READ = frozenset({"GET", "HEAD", "OPTIONS"})
# `same-origin`: this API's own page; `none`: typed by the user (or a bookmark).
_ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})


def cross_site_refusal(method: str, headers: dict[str, str]) -> ApiError | None:
    """The 403 for a browser's write from another site (or subdomain), or None. Pure.

    `headers` are the request's, names in lower case.
    """
    if method.upper() in _METHODS_THAT_READ:
        return None
    fetch_site = headers.get("sec-fetch-site")
    origin = headers.get("origin")
    if fetch_site is not None:
        allowed = fetch_site.strip().lower() in _ALLOWED_FETCH_SITES
        source = f"Sec-Fetch-Site: {fetch_site}"
    elif origin is not None:
        origin_parts = urlsplit(origin.strip())
        host = headers.get("host", "").strip().lower()
        allowed = bool(origin_parts.netloc) and origin_parts.netloc.lower() == host
        source = f"Origin: {origin}"
    else:
        return None
    if allowed:
        return None
    return ApiError(
        403,
        "cross_site",
        f"a browser sent this {method.upper()} from another site ({source}); this API takes "
        "writes from its own pages, or from clients sending 'Authorization: Bearer <key>'",
    )


class CrossSiteRefusal:
    """Answer `cross_site_refusal`'s 403 for the requests it refuses; pass the rest on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in scope.get("headers") or []
            }
            refusal = cross_site_refusal(scope["method"], headers)
            if refusal is not None:
                await error_response(refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)
