"""The API's routes, one module per resource: `runs` (triggering runs, one or a batch, and
everything under /runs), `tasks` (tasks and their queues), `schedules` (and the timezones
they may use), `deployments`, `keys` (API keys), and `runner` (the runner's callbacks for
its attempt). Who may call each route is declared
on it, with one of the dependencies of `access`.

Routes are thin: they read what they need through `Services`, and leave building and
deciding to the package's pure modules.
"""
