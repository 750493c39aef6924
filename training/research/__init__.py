"""The research programme's non-RL core (issue 16): ``python -m training research``.

Modules: ``cpcv`` (combinatorial purged cross-validation and its paths), ``funding`` (the real
funding series as a per-bar cost, visible only after publication), ``candidates`` (baselines and
the non-RL combiners: Hedge, volatility-managed vote, regularized linear/logistic), ``learners``
(meta-labeling, Moody-Saffell direct reinforcement, the DP oracle and its imitation), ``stats``
(stationary bootstrap, White's Reality Check and Hansen's SPA on Sharpe differences),
``protocol`` (the nested CPCV run in a local process pool, every trial logged, the gates),
``publish`` (the run into the results DB), ``report`` (REPORT.md and its plots).
Training code imports only ``common`` and ``config`` (tests/unit/test_layers.py).
"""
