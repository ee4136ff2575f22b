"""A task module that takes its time to import, as one importing a big library does."""

import os
import time
from pathlib import Path
from typing import Any

from podtask import Context, task

Path(os.environ["RUNNER_TEST_FLAG"]).write_text("importing")
time.sleep(30)


@task(id="runner-slow-import")
def never_reached(payload: Any, ctx: Context) -> None: ...
