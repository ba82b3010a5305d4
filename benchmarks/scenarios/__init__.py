"""The benchmark scenarios, in the order the table lists them.

Each module defines ``cases(quick) -> list[Case]`` and ``run(library, case, quick) -> Measured``
(raising ``Skip`` where a library cannot run a case), plus ``LIBRARIES`` and ``TOLERANCE``.
"""

SCENARIOS = ("overhead", "mlp", "deep", "cleargrad", "conv", "memory")
