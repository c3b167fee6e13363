"""The task layer: one package per family (``detect``, ``action``, ``grasp``) over one shared
skeleton (:mod:`singleshot.tasks.common`).

Each family package has the same files for the same jobs (``config``, ``keys``, ``predictor``,
``data``, ``check``, ``evaluate``, ``predict``, ``train``, ``distill``, ``export``, ``convert``,
``demo``, ``pictures``) and its ``__init__`` holds ``MODES``: mode name (``train``, ``val``,
``predict``, ``score``, ``check``, ``export``, ``convert``, ``demo``) -> ``fn(args: dict[str, str])
-> dict | None``, and ``SPECS``: per mode the keys it reads and their help. The CLI's table of tasks
is in :mod:`singleshot.cli`. See docs/ARCHITECTURE.md.
"""
