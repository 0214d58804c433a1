"""Torch building blocks of the networks: batched experts and towers, the in-model ensemble.

Internal; the architectures (:mod:`sk_mmoe.architectures`) and the input
blocks (:mod:`sk_mmoe.inputs`) are built from these.
"""
