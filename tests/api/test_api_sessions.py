"""The dashboard's sessions over the embedded cluster: signing in and out, the cookie's
attributes, the JSON API taking the cookie with the CSRF header, read-only and revoked keys,
pages without a session, and writes a browser sends from another site."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from api_fixtures import READ_KEY, WRITE_KEY, assert_error, settings_for
from fastapi.testclient import TestClient
from httpx import Response

from podtask._control.api_keys import (
    ApiKeySecret,
    api_key_digest,
    without_key,
)
from podtask._control.attempt_tokens import InvalidAttemptToken, verify_attempt_token
from podtask_api.app import create_app
from podtask_api.cross_site import cross_site_refusal
from podtask_api.dashboard.sessions import (
    CSRF_HEADER,
    SESSION_COOKIE,
    InvalidSession,
    csrf_token_matches,
    needs_csrf_token,
    new_session,
    safe_next,
    session_key,
    sign_session,
    verify_session,
)
from tests.embedded_kube import EmbeddedKube, KubeNamespace

TRIGGER = "/api/v1/tasks/hello-world/trigger"


# -- the rules, pure ----------------------------------------------------------------------------


def test_a_session_round_trips_and_anything_else_is_refused_with_its_reason() -> None:
    secret = b"k" * 32
    claims = new_session(api_key_digest(WRITE_KEY), hours=2, now=1_000)
    assert claims.expires_at == 1_000 + 7200
    value = sign_session(secret, claims)
    assert verify_session(secret, value, now=1_001) == claims
    body, _, signature = value.partition(".")
    cases = [
        (value, 1_000 + 7200, "expired"),
        (sign_session(b"other", claims), 1_001, "signature"),
        (f"{body}x.{signature}", 1_001, "signature"),
        ("no-dot", 1_001, "malformed"),
        ("", 1_001, "malformed"),
    ]
    for cookie, now, reason in cases:
        with pytest.raises(InvalidSession, match=reason):
            verify_session(secret, cookie, now=now)
    assert new_session("d", hours=1).csrf_token != new_session("d", hours=1).csrf_token


def test_the_session_key_is_never_the_runner_token_secret() -> None:
    assert session_key("configured", "runner") == b"configured"
    derived = session_key("", "runner")
    assert derived is not None and derived != b"runner" and len(derived) == 32
    assert session_key("", "") is None
    # A session signed with the derived key is no attempt token under the runner secret.
    cookie = sign_session(derived, new_session("d", hours=1))
    with pytest.raises(InvalidAttemptToken):
        verify_attempt_token(b"runner", cookie)


def test_the_csrf_token_is_needed_for_every_method_that_writes() -> None:
    assert [m for m in ("GET", "HEAD", "OPTIONS", "get") if needs_csrf_token(m)] == []
    assert all(needs_csrf_token(m) for m in ("POST", "PUT", "PATCH", "DELETE"))
    claims = new_session("d", hours=1)
    assert csrf_token_matches(claims, claims.csrf_token)
    assert not csrf_token_matches(claims, None) and not csrf_token_matches(claims, "x")


def test_after_sign_in_only_a_path_of_this_site() -> None:
    kept = ["/runs", "/runs?status=Failed&tag=a", "/runs/run-1", "/keys#new"]
    assert [safe_next(v) for v in kept] == kept
    for outside in (None, "", "runs", "//evil.example", "/\\evil.example", "https://e.x/"):
        assert safe_next(outside) == "/runs", outside
    assert safe_next("/runs\r\nSet-Cookie: x") == "/runs"


def test_writes_a_browser_sends_from_another_site_are_refused() -> None:
    host = {"host": "podtask.example:8030"}
    refused = [
        ("POST", {**host, "sec-fetch-site": "cross-site"}),
        ("DELETE", {**host, "sec-fetch-site": "same-site"}),
        ("POST", {**host, "origin": "https://evil.example"}),
        ("POST", {**host, "origin": "null"}),
        ("PUT", {**host, "origin": "http://podtask.example:9999"}),
    ]
    for method, headers in refused:
        refusal = cross_site_refusal(method, headers)
        assert refusal is not None and refusal.status == 403 and refusal.code == "cross_site"
    allowed = [
        ("GET", {**host, "sec-fetch-site": "cross-site"}),  # a link: reads only
        ("POST", host),  # not a browser: curl, the Python client
        ("POST", {**host, "sec-fetch-site": "same-origin", "origin": "http://elsewhere"}),
        ("POST", {**host, "origin": "http://podtask.example:8030"}),
        ("POST", {**host, "sec-fetch-site": "none"}),
    ]
    for method, headers in allowed:
        assert cross_site_refusal(method, headers) is None, headers


# -- over the embedded cluster ------------------------------------------------------------------


@pytest.fixture
def browser(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace, keys_secret: ApiKeySecret
) -> Iterator[TestClient]:
    """The API as a browser reaches it: no Authorization header, cookies kept."""
    settings = settings_for(embedded_kube, namespace, api_key_hashes="", api_keys_cache_seconds=0)
    with TestClient(
        create_app(settings), raise_server_exceptions=False, follow_redirects=False
    ) as client:
        yield client


def sign_in(browser: TestClient, key: str, next_path: str = "") -> Response:
    form = browser.get("/sign-in", params={"next": next_path} if next_path else None)
    assert form.status_code == 200, form.text
    token = re.search(r'name="form_token" value="([^"]+)"', form.text)
    assert token is not None
    fields = {"key": key, "form_token": token[1], "next": next_path}
    return browser.post("/sign-in", data=fields)


def csrf_token(browser: TestClient) -> str:
    page = browser.get("/runs")
    assert page.status_code == 200, page.text
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found is not None
    return found[1]


def test_signing_in_sets_a_strict_http_only_cookie_and_goes_on(browser: TestClient) -> None:
    signed_in = sign_in(browser, WRITE_KEY, "/runs?status=Failed")
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/runs?status=Failed"
    [cookie] = [c for c in signed_in.headers.get_list("set-cookie") if "podtask_session=" in c]
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert "secure" not in attributes  # plain http here
    assert "max-age=43200" in attributes  # PODTASK_SESSION_HOURS, 12 by default
    assert WRITE_KEY not in cookie
    page = browser.get("/runs")
    assert page.status_code == 200 and "ci" in page.text and "badge-read-only" not in page.text
    # Signed in already: the sign-in page sends the browser on.
    assert browser.get("/sign-in", params={"next": "/keys"}).headers["location"] == "/keys"


def test_the_cookie_is_secure_over_https(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace, keys_secret: ApiKeySecret
) -> None:
    settings = settings_for(embedded_kube, namespace, api_key_hashes="")
    with TestClient(
        create_app(settings), base_url="https://testserver", follow_redirects=False
    ) as client:
        cookie = sign_in(client, WRITE_KEY).headers["set-cookie"]
        assert "secure" in cookie.lower()


def test_a_wrong_key_gets_the_form_again_and_no_cookie(browser: TestClient) -> None:
    answer = sign_in(browser, "pt_not_a_key")
    assert answer.status_code == 401
    assert "That API key is not valid" in answer.text
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    assert browser.get("/runs").status_code == 303


def test_the_sign_in_form_needs_its_own_token(browser: TestClient) -> None:
    answer = browser.post("/sign-in", data={"key": WRITE_KEY, "form_token": "forged"})
    assert answer.status_code == 403 and "expired" in answer.text
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


def test_next_is_only_ever_a_path_of_this_site(browser: TestClient) -> None:
    for outside in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "runs"):
        browser.cookies.clear()
        assert sign_in(browser, WRITE_KEY, outside).headers["location"] == "/runs"


def test_pages_without_a_session_redirect_to_sign_in(browser: TestClient) -> None:
    assert browser.get("/").headers["location"] == "/runs"
    answer = browser.get("/runs", params={"status": "Failed"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in?next=%2Fruns%3Fstatus%3DFailed"
    browser.cookies.set(SESSION_COOKIE, "forged.value")
    refused = browser.get("/runs")
    assert refused.status_code == 303 and "podtask_session=" in refused.headers["set-cookie"]


def test_the_api_takes_the_cookie_and_wants_the_csrf_header_for_writes(
    browser: TestClient, namespace: KubeNamespace
) -> None:
    assert_error(browser.get("/api/v1/runs"), 401, "unauthorized")
    sign_in(browser, WRITE_KEY)
    token = csrf_token(browser)
    assert browser.get("/api/v1/runs").status_code == 200
    for headers in ({}, {CSRF_HEADER: "wrong"}, {CSRF_HEADER: ""}):
        error = assert_error(browser.post(TRIGGER, json={}, headers=headers), 403, "csrf")
        assert CSRF_HEADER in error["message"] and "csrf-token" in error["message"]
    assert namespace.run_names() == []
    created = browser.post(TRIGGER, json={"payload": 1}, headers={CSRF_HEADER: token})
    assert created.status_code == 201, created.text
    # The Authorization header wins over the cookie: no CSRF token needed with a key.
    keyed = browser.post(TRIGGER, json={}, headers={"Authorization": f"Bearer {WRITE_KEY}"})
    assert keyed.status_code == 201, keyed.text


def test_a_read_only_session_reads_and_never_writes(
    browser: TestClient, namespace: KubeNamespace
) -> None:
    sign_in(browser, READ_KEY)
    page = browser.get("/runs")
    assert "grafana" in page.text and "badge-read-only" in page.text
    token = csrf_token(browser)
    assert browser.get("/api/v1/tasks").status_code == 200
    error = assert_error(
        browser.post(TRIGGER, json={}, headers={CSRF_HEADER: token}), 403, "read_only_key"
    )
    assert "read-only" in error["message"]
    assert namespace.run_names() == []


def test_a_revoked_keys_session_ends(browser: TestClient, keys_secret: ApiKeySecret) -> None:
    sign_in(browser, WRITE_KEY)
    assert browser.get("/runs").status_code == 200
    keys_secret.change(lambda keys: without_key(keys, "ci"))
    error = assert_error(browser.get("/api/v1/runs"), 401, "unauthorized")
    assert "revoked" in error["message"]
    assert browser.get("/runs").headers["location"] == "/sign-in?next=%2Fruns"


def test_an_expired_or_foreign_cookie_is_refused(
    browser: TestClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    settings = settings_for(embedded_kube, namespace)
    key = session_key("", settings.runner_token_secret.get_secret_value())
    assert key is not None
    expired = new_session(api_key_digest(WRITE_KEY), hours=1, now=1_000_000)
    browser.cookies.set(SESSION_COOKIE, sign_session(key, expired))
    assert "expired" in assert_error(browser.get("/api/v1/runs"), 401, "unauthorized")["message"]
    foreign = new_session(api_key_digest(WRITE_KEY), hours=1)
    browser.cookies.set(SESSION_COOKIE, sign_session(b"another secret", foreign))
    assert_error(browser.get("/api/v1/runs"), 401, "unauthorized")
    browser.cookies.set(SESSION_COOKIE, sign_session(key, foreign))
    assert browser.get("/api/v1/runs").status_code == 200


def test_signing_out_needs_the_sessions_token_and_ends_it(browser: TestClient) -> None:
    sign_in(browser, WRITE_KEY)
    token = csrf_token(browser)
    assert browser.post("/sign-out", data={"csrf": "wrong"}).status_code == 403
    assert browser.get("/runs").status_code == 200
    out = browser.post("/sign-out", data={"csrf": token})
    assert out.status_code == 303 and out.headers["location"] == "/sign-in"
    assert browser.get("/runs").status_code == 303


def test_a_write_a_browser_sends_from_another_site_is_refused(
    browser: TestClient, namespace: KubeNamespace
) -> None:
    sign_in(browser, WRITE_KEY)
    token = csrf_token(browser)
    form = {"content-type": "application/x-www-form-urlencoded"}
    for where in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://testserver"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        headers = {**form, **where, CSRF_HEADER: token}
        answer = browser.post(TRIGGER, content=b'{"payload": 1}', headers=headers)
        assert_error(answer, 403, "cross_site")
        signed_out = browser.post("/sign-out", data={"csrf": token}, headers=where)
        assert_error(signed_out, 403, "cross_site")
    assert namespace.run_names() == []
    # The dashboard's own pages: the same origin.
    same = {CSRF_HEADER: token, "Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    assert browser.post(TRIGGER, json={}, headers=same).status_code == 201


def test_the_json_api_still_reads_a_form_encoded_body_as_json(browser: TestClient) -> None:
    answer = browser.post(
        TRIGGER,
        content=b'{"payload": {"n": 1}}',
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "Authorization": f"Bearer {WRITE_KEY}",
        },
    )
    assert answer.status_code == 201, answer.text
    # A dashboard form is not: a body over the forms' limit is refused before it is read.
    big = browser.post("/sign-in", content=b"key=" + b"x" * 70_000)
    assert_error(big, 413, "request_too_large")
