"""Exception types raised by singleshot.

Every error that comes from user input (a file, a config key, a weights file) names the
offending file or key and says what is wrong with it.
"""

from __future__ import annotations


class SingleshotError(Exception):
    """Base class of every error singleshot raises on purpose."""


class DataError(SingleshotError, ValueError):
    """A dataset file is missing, unreadable or malformed. The message names the file."""


class ConfigError(SingleshotError, ValueError):
    """A config key or value is unknown or invalid. The message names the key."""


class WeightsError(SingleshotError, ValueError):
    """A weights or checkpoint file cannot be loaded safely or does not fit the model."""


class TrainingError(SingleshotError, RuntimeError):
    """Training cannot go on (for example, too many consecutive non-finite losses)."""
