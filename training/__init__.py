"""Offline training project: history -> strategy signals -> features -> vectorized env -> evaluation.

Everything the live meta consumer computes (observation, action set, model portfolio) is imported
from ``common`` and ``meta_consumer``, never re-implemented here, so a model trained offline sees
the same numbers live. This package needs only the ``services`` dependency group; the torch-based
agents (ElegantRL) will live in their own module behind the ``training`` group.
"""
