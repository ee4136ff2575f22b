"""The dashboard's Schedules pages as the server renders them, over the embedded cluster (no
browser; tests/dashboard drives them in chromium): the empty page says how to declare or
create a schedule; a schedule shows its ticks in its zone and in UTC, its runs (those with
its label), why it is not ready; the list's filters and pages are the API's; a schedule's
own page, and one that does not exist; the runs list filtered by schedule."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from api_fixtures import API_KEY, bearer
from fastapi.testclient import TestClient
from kubernetes import client as k8s

from podtask._contract.wire import GROUP, LABEL_SCHEDULE, TASK_RUNS, TASK_SCHEDULES, VERSION
from tests.embedded_kube import EmbeddedKube, KubeNamespace

TASK = "hello-world"


def create_schedule(browser: TestClient, **body: Any) -> dict[str, Any]:
    answer = browser.post("/api/v1/schedules", json={"task": TASK, **body}, headers=bearer(API_KEY))
    assert answer.status_code == 201, answer.text
    schedule: dict[str, Any] = answer.json()
    return schedule


def a_run_of(
    browser: TestClient, kube: EmbeddedKube, namespace: KubeNamespace, schedule: str
) -> str:
    """A run of the task, labelled as the operator labels a tick's run."""
    answer = browser.post(f"/api/v1/tasks/{TASK}/trigger", json={}, headers=bearer(API_KEY))
    assert answer.status_code == 201, answer.text
    run_id: str = answer.json()["id"]
    k8s.CustomObjectsApi(kube.api).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace.name,
        TASK_RUNS,
        run_id,
        {"metadata": {"labels": {LABEL_SCHEDULE: schedule}}},
    )
    return run_id


def cards(html: str) -> list[str]:
    return re.findall(r'data-schedule="([^"]+)"', html)


def test_without_schedules_the_page_says_how_to_declare_or_create_one(
    signed_in_browser: TestClient,
) -> None:
    page = signed_in_browser.get("/schedules")
    assert page.status_code == 200, page.text
    text = unescape(page.text)
    assert "No schedules yet" in text and '@task(id="daily-report", schedule="0 9 * * 1-5")' in text
    assert "podtask schedules create daily-report --cron '0 9 * * 1-5'" in text
    assert cards(page.text) == []
    assert '<a href="/schedules" aria-current="page">Schedules</a>' in page.text


def test_each_schedule_shows_its_ticks_its_runs_and_why_it_is_not_ready(
    signed_in_browser: TestClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    paris = create_schedule(
        signed_in_browser, cron="0 9 * * 1-5", timezone="Europe/Paris", externalId="tenant-1"
    )
    utc = create_schedule(signed_in_browser, cron="@daily", active=False)
    run_id = a_run_of(signed_in_browser, embedded_kube, namespace, paris["id"])
    missing = {
        "type": "Ready",
        "status": "False",
        "reason": "TaskNotDeployed",
        "message": "task hello-world is not deployed",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    k8s.CustomObjectsApi(embedded_kube.api).patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace.name,
        TASK_SCHEDULES,
        utc["id"],
        {"status": {"conditions": [missing]}},
    )

    page = signed_in_browser.get("/schedules")
    assert page.status_code == 200, page.text
    assert sorted(cards(page.text)) == sorted([paris["id"], utc["id"]])
    text = unescape(page.text)
    card = text[text.index(f'data-schedule="{paris["id"]}"') :].split("</article>")[0]
    assert "0 9 * * 1-5" in card and "Europe/Paris" in card and "tenant-1" in card
    assert re.search(r"(Mon|Tue|Wed|Thu|Fri) \d{4}-\d\d-\d\d 09:00 CES?T", card), card
    assert re.search(r"\d{4}-\d\d-\d\d 0[78]:00 UTC", card), card
    assert f'href="/runs/{run_id}"' in card and f"/runs?scheduleId={paris['id']}" in card
    assert "7 more" in card  # three ticks at once, the other seven behind "more"
    off = text[text.index(f'data-schedule="{utc["id"]}"') :].split("</article>")[0]
    assert "Inactive" in off and "None: it is inactive." in off and "No run yet." in off
    assert "<strong>TaskNotDeployed</strong>: task hello-world is not deployed" in off

    # The filters are the API's.
    active = signed_in_browser.get("/schedules", params={"active": "false"})
    assert cards(active.text) == [utc["id"]]
    assert cards(signed_in_browser.get("/schedules", params={"type": "DECLARATIVE"}).text) == []
    assert (
        "No schedules match these filters."
        in signed_in_browser.get("/schedules", params={"type": "DECLARATIVE"}).text
    )
    bad = signed_in_browser.get("/schedules", params={"type": "HOURLY", "task": "a b"})
    assert bad.status_code == 200 and 'aria-invalid="true"' in bad.text
    assert sorted(cards(bad.text)) == sorted([paris["id"], utc["id"]])  # left out, not applied

    # Its runs in the runs list.
    runs = signed_in_browser.get("/runs", params={"scheduleId": paris["id"]})
    assert re.findall(r'<tr data-run-id="([^"]+)"', runs.text) == [run_id]
    assert f'href="/schedules/{paris["id"]}"' in runs.text


def test_a_schedules_own_page_shows_every_tick_and_a_missing_one_is_a_404(
    signed_in_browser: TestClient, namespace: KubeNamespace
) -> None:
    schedule = create_schedule(signed_in_browser, cron="*/5 * * * *", timezone="America/New_York")
    page = signed_in_browser.get(f"/schedules/{schedule['id']}")
    assert page.status_code == 200, page.text
    assert len(re.findall(r"<li><time datetime=", page.text)) == 10
    assert f"kubectl get taskschedule {schedule['id']} -n {namespace.name} -o yaml" in page.text
    assert f"podtask schedules update {schedule['id']} --cron" in unescape(page.text)
    missing = signed_in_browser.get("/schedules/sched-0000000000000000")
    assert missing.status_code == 404 and "Schedule not found" in missing.text


def test_the_list_pages_with_the_apis_cursor(signed_in_browser: TestClient) -> None:
    from podtask_api.dashboard.schedules_page import SCHEDULES_PER_PAGE

    made = {
        create_schedule(signed_in_browser, cron="@hourly")["id"]
        for _ in range(SCHEDULES_PER_PAGE + 1)
    }
    first = signed_in_browser.get("/schedules")
    assert len(cards(first.text)) == SCHEDULES_PER_PAGE
    next_url = unescape(re.search(r'href="([^"]+)" rel="next"', first.text)[1])  # type: ignore[index]
    second = signed_in_browser.get(next_url)
    assert set(cards(first.text)) | set(cards(second.text)) == made
    assert 'rel="next"' not in second.text and "First page" in second.text
    stale = signed_in_browser.get("/schedules", params={"cursor": "nonsense"})
    assert stale.status_code == 200 and "Go to the first page" in stale.text
