"""A task module that cannot be imported: it needs a package nobody installed."""

import podtask_no_such_dependency  # noqa: F401
