"""Networks of every family and the one table of their builders (:mod:`singleshot.models.registry`).

``create_model(name, *args, **kw)`` builds the architecture registered as ``name``; detectors take
``num_classes`` (background excluded) first. Every ``forward`` returns a dict of raw head outputs.
Importing this package imports each module that registers a builder, so the table is complete.
"""

from __future__ import annotations

from singleshot.models import act, ggcnn, psp_grasp, small, ssd, tiny, yowo  # noqa: F401  (they register builders)
from singleshot.models.registry import create_model, list_models, model_entry, model_from_meta, register_model

__all__ = ["create_model", "list_models", "model_entry", "model_from_meta", "register_model"]
