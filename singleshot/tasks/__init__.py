"""The task layer: one package per family (``detect``, ``action``, ``grasp``) over one shared
skeleton (:mod:`singleshot.tasks.common`).

Each family package has the same files for the same jobs (``config``, ``predictor``, ``data``,
``evaluate``, ``predict``, ``train``, ``distill``, ``export``, ``convert``, ``demo``) and its
``__init__`` holds only ``MODES``: mode name (``train``, ``val``, ``predict``, ``score``, ``export``,
``convert``, ``demo``) -> ``fn(args: dict[str, str]) -> dict | None``. The CLI's table of tasks is
in :mod:`singleshot.cli`. See docs/ARCHITECTURE.md.
"""
