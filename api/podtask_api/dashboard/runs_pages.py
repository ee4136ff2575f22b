"""The runs' pages: `/runs`, the list of runs.

A placeholder until the runs' list is built: the dashboard's shell with a heading, so that
signing in has somewhere to land.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from podtask_api.dashboard.pages import PageSessionDep, render

router = APIRouter(include_in_schema=False)


@router.get("/runs")
async def runs_page(request: Request, session: PageSessionDep) -> HTMLResponse:
    return render(request, "runs.html")
