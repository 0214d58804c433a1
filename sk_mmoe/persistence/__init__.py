"""Persistence: the safe file format, training checkpoints, and the estimators' save / load.

Internal; the public entry points are the estimators' ``save`` / ``load`` and
:mod:`sk_mmoe.callbacks`.
"""
