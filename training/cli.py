"""``python -m training <step>``: the offline training project, one command per step, and ``all``.

Data and features: ``download`` (candles from a CSV or CCXT), ``signals`` (strategy answers over
history -> .npz), ``features`` (market features normalized on the train window), ``split`` (print
the walk-forward windows). Training: ``train`` (ElegantRL agents on the train window, evaluated with
the baselines, recorded, best proposed), ``walkforward`` (folds -> report.json), ``baselines``.
Results (``training.results``): ``runs``, ``leaderboard``, ``report`` (HTML + PNGs), ``select``
(upload a model to the live ``models`` table and select it), ``retrain-check`` (exit 1 when the
registry changed), ``retrain`` (the scheduled entry point: train, evaluate, propose, never select).
``all`` runs every step once on one chronological split. ``replay-backtest`` is a deprecated alias
of ``python -m ops replay-backtest`` (the data replayed through the real services, compared with the
vectorized backtest).

The commands live in ``training.commands`` (one module per group), each registering on one Typer
app; this module assembles them. ``COMMAND_MODULES`` is imported in order because that is the
order ``--help`` lists the commands in (an import sorter would reorder plain import lines).
"""

from __future__ import annotations

import importlib

from training.commands.app import app

COMMAND_MODULES = ("experiments", "results", "train", "data", "replay", "research")

for _name in COMMAND_MODULES:
    importlib.import_module(f"training.commands.{_name}")

__all__ = ["app"]
