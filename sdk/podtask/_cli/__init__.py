"""The `podtask` command: its parser, output, `podtask dev` and its processes, `podtask
deploy`. Private: the console script runs `podtask._cli.cli:main`.
"""
