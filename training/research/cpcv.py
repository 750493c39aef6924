"""Combinatorial purged cross-validation (López de Prado, AFML ch. 12), written compactly here.

Why not skfolio's ``CombinatorialPurgedCV``: it works on sample indices and brings scikit-learn and
scipy into an environment that has neither; what the protocol needs is ~60 lines (groups, purge,
embargo, paths) and is tested directly (docs/decisions/0016-research-protocol.md).

Bars ``start .. n-1`` are cut into ``groups`` contiguous groups; every choice of ``test_groups`` of
them is one split (6 choose 2 = 15). Training bars are the other groups minus a *purge* of ``purge``
bars on both sides of each test group (a training label near the boundary looks into the test
block, a training feature just after it looks back into it) and an *embargo* of ``embargo`` more
bars after each test group. Each group is tested in C(N-1, k-1) splits, so the test blocks assemble
into that many *paths*, each covering every bar exactly once.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """One CPCV split: the held-out groups and the bar positions to train and test on."""

    test_groups: tuple[int, ...]
    train: np.ndarray
    test: np.ndarray


def group_bounds(n: int, groups: int, start: int = 0) -> list[tuple[int, int]]:
    """Half-open ``[a, b)`` bar ranges of ``groups`` contiguous, near-equal groups of ``start..n-1``."""
    if groups < 2 or n - start < groups:
        raise ValueError(f"cannot cut {n - start} bars into {groups} groups")
    parts = np.array_split(np.arange(start, n), groups)
    return [(int(p[0]), int(p[-1]) + 1) for p in parts]


def _train_mask(
    n: int, start: int, bounds: list[tuple[int, int]], held: tuple[int, ...], purge: int, embargo: int
) -> np.ndarray:
    keep = np.zeros(n, dtype=bool)
    keep[start:n] = True
    for g in held:
        a, b = bounds[g]
        keep[max(start, a - purge) : min(n, b + purge + embargo)] = False
    return keep


def cpcv_splits(
    n: int, *, groups: int = 6, test_groups: int = 2, start: int = 0, purge: int = 0, embargo: int = 0
) -> list[Split]:
    """Every ``test_groups``-of-``groups`` split of bars ``start..n-1`` (lexicographic order)."""
    if not 1 <= test_groups < groups:
        raise ValueError("need 1 <= test_groups < groups")
    bounds = group_bounds(n, groups, start)
    out = []
    for held in itertools.combinations(range(groups), test_groups):
        test = np.concatenate([np.arange(*bounds[g]) for g in held])
        train = np.flatnonzero(_train_mask(n, start, bounds, held, purge, embargo))
        if train.size == 0:
            raise ValueError("purge and embargo leave no training bars")
        out.append(Split(held, train, test))
    return out


def n_paths(groups: int, test_groups: int) -> int:
    """How many times each group is held out, i.e. how many full OOS paths the splits assemble."""
    return math.comb(groups - 1, test_groups - 1)


def paths(splits: list[Split], groups: int) -> list[list[int]]:
    """``paths[p][g]``: the index of the split whose test block is used for group ``g`` in path ``p``.

    Group ``g``'s p-th appearance (in split order) goes to path ``p``; so every path holds each group
    once and every (split, held group) pair is used in exactly one path.
    """
    seen: list[list[int]] = [[] for _ in range(groups)]
    for i, sp in enumerate(splits):
        for g in sp.test_groups:
            seen[g].append(i)
    counts = {len(s) for s in seen}
    if len(counts) != 1:
        raise ValueError("groups are held out unequally often; not a full CPCV")
    k = counts.pop()
    return [[seen[g][p] for g in range(groups)] for p in range(k)]


def inner_splits(
    outer: Split, n: int, bounds: list[tuple[int, int]], purge: int, embargo: int
) -> list[Split]:
    """Inner folds on the outer training part only: each training group held out once.

    The inner test block is that group's bars still in the outer training set; the inner training
    set is the rest of the outer training set minus purge/embargo around the inner test group. The
    outer test bars appear in neither (the choices made here never see them).
    """
    outer_train = np.zeros(n, dtype=bool)
    outer_train[outer.train] = True
    out = []
    for g in range(len(bounds)):
        if g in outer.test_groups:
            continue
        a, b = bounds[g]
        test_mask = np.zeros(n, dtype=bool)
        test_mask[a:b] = True
        test_mask &= outer_train
        train_mask = outer_train & _train_mask(n, bounds[0][0], bounds, (g,), purge, embargo)
        if test_mask.any() and train_mask.any():
            out.append(Split((g,), np.flatnonzero(train_mask), np.flatnonzero(test_mask)))
    return out
