"""The table of tasks: CLI task name -> module holding its ``MODES``.

Each task module declares its pieces (model builders, target assignment, loss, post-processing,
evaluator, dataset readers) and a ``MODES`` dict mapping a mode name (``train``, ``val``,
``predict``, ``score``, ``export``, ``convert``, ``demo``) to ``fn(args: dict[str, str]) -> dict | None``.
Modules are imported only when their task is run.
"""

from __future__ import annotations

TASKS: dict[str, str] = {
    "detect": "singleshot.tasks.detect_modes",
    "action": "singleshot.tasks.action_modes",
    "grasp": "singleshot.tasks.grasp_modes",
}
