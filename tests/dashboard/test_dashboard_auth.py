"""Acceptance 4 of issue 14 over HTTP, without a browser, against `podtask dev`: every
dashboard page redirects to sign-in without a session; every action of the JSON API is a
401 without a key or a session, and a 403 `csrf` with the session's cookie but without its
CSRF token; a form another site posts with the cookie is refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute

from podtask_api.dashboard import page_routers
from tests.dashboard.browser import Dashboard, SessionClient


@pytest.fixture
def session(dashboard: Dashboard) -> Iterator[SessionClient]:
    signed_in = dashboard.session_client(dashboard.write_key)
    try:
        yield signed_in
    finally:
        signed_in.http.close()


def dashboard_pages() -> list[str]:
    """Every page the dashboard serves (a GET route), its parameters filled in."""
    paths = {
        re.sub(r"\{[^}]*\}", "x", route.path)
        for router in page_routers()
        for route in router.routes
        if isinstance(route, APIRoute) and "GET" in route.methods
    }
    return sorted(paths - {"/sign-in"})


def api_writes(dashboard: Dashboard) -> list[tuple[str, str]]:
    """Every operation of the public JSON API that changes something: (method, path)."""
    with dashboard.http() as http:
        paths = http.get("/openapi.json").json()["paths"]
    writes = [
        (method.upper(), re.sub(r"\{[^}]*\}", "x", template))
        for template, operations in paths.items()
        for method in operations
        if method not in ("get", "head") and not template.startswith("/api/v1/runner/")
    ]
    assert len(writes) >= 8
    return writes


def test_every_page_without_a_session_redirects_to_sign_in(dashboard: Dashboard) -> None:
    pages = dashboard_pages()
    assert {"/", "/runs"} <= set(pages)
    with dashboard.http() as anonymous:
        for path in pages:
            answer = anonymous.get(path)
            assert answer.status_code == 303, (path, answer.text)
            if path == "/":
                assert answer.headers["location"] == "/runs"
                continue
            assert answer.headers["location"] == f"/sign-in?next={quote(path, safe='')}", path
        # A forged cookie is no session either (and is cleared).
        anonymous.cookies.set("podtask_session", "forged.cookie")
        answer = anonymous.get("/runs")
        assert answer.status_code == 303 and "podtask_session=" in answer.headers["set-cookie"]


def test_every_action_needs_a_key_or_a_session_with_its_csrf_token(
    dashboard: Dashboard, session: SessionClient
) -> None:
    writes = api_writes(dashboard)
    with dashboard.http() as anonymous:
        for method, path in writes:
            answer = anonymous.request(method, path, json={})
            assert answer.status_code == 401, (method, path, answer.text)
    for method, path in writes:
        for csrf in (None, "not-the-token", ""):
            answer = session.write(method, path, csrf=csrf, json={})
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "csrf", (method, path)
    # Reading needs no CSRF token; the session's own token lets a write through.
    assert session.http.get("/api/v1/tasks").status_code == 200
    triggered = session.write(
        "POST", "/api/v1/tasks/dashboard-hello/trigger", csrf=session.csrf_token, json={}
    )
    assert triggered.status_code == 201, triggered.text


def test_a_cross_site_form_post_with_the_cookie_is_refused(
    dashboard: Dashboard, session: SessionClient
) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    for where in ({"Origin": "https://elsewhere.example"}, {"Sec-Fetch-Site": "cross-site"}):
        headers = {**form, **where}
        answer = session.http.post(
            "/api/v1/tasks/dashboard-hello/trigger",
            content=b'{"payload": {"from": "elsewhere"}}',
            headers={**headers, "X-CSRF-Token": session.csrf_token},
        )
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "cross_site"
        signed_out = session.http.post(
            "/sign-out", data={"csrf": session.csrf_token}, headers=where
        )
        assert signed_out.status_code == 403
    assert session.http.get("/runs").status_code == 200  # still signed in
