"""Callbacks for the estimators' ``callbacks`` parameter, and resuming a fit.

:class:`TrainingCheckpoint` writes, every few epochs and atomically, all a
fit needs to go on after a crash; :func:`resume_fit` finishes the fit from
that file with the same result as an uninterrupted fit.
"""

from .persistence._checkpoint import TrainingCheckpoint, resume_fit

__all__ = ["TrainingCheckpoint", "resume_fit"]
