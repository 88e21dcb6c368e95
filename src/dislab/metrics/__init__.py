"""Disentanglement metrics: one file each, pure functions over a representation.

Every metric is ``score(data, representation, rng, **params) -> dict[str, float]``; see
:mod:`dislab.metrics.base` for the shared contract and :func:`evaluate` for the suite.
"""
