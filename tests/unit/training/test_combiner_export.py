"""``training export-combiner``: research configuration keys -> live combiner artefacts (ADR 0020)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from common.combiner import is_combiner_artifact, load_combiner
from training.cli import app
from training.research.candidates import default_grid
from training.research.export import ExportError, _Row, export, parse_key

STRATS = ("supertrend", "ott", "bband_rsi")


def test_every_volmanaged_grid_key_round_trips_and_exports() -> None:
    keys = [c.key for c in default_grid() if c.family == "volmanaged"]
    assert len(keys) == 9
    for key in keys:
        assert parse_key(key).key == key
        out = export(key, STRATS)
        comb = load_combiner(_Row(out.model_id, out.artifact, out.sha256))
        cfg = parse_key(key)
        assert comb.window == cfg.params["window"] and comb.params["target_vol"] == cfg.params["target_vol"]
        assert json.loads(out.artifact)["provenance"]["config"] == key
        assert out.model_id == f"combiner-volmanaged-{out.fingerprint[:12]}" and not out.registered


@pytest.mark.parametrize(
    "key,why",
    [
        ('ridge:{"lam":1.0}', "not exportable"),
        ('volmanaged:{"target_vol":0.5}', "takes target_vol, window"),
        ('volmanaged:{"target_vol":0.5,"window":168,"eta":1}', "takes target_vol, window"),
        ("volmanaged", "expected FAMILY"),
        ("volmanaged:{oops", "not JSON"),
        ('volmanaged:{"target_vol":"high","window":168}', "must be a number"),
    ],
)
def test_refused_configurations_say_why(key: str, why: str) -> None:
    with pytest.raises(ExportError, match=why):
        export(key, STRATS)


def test_cli_writes_the_artefact(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    key = 'volmanaged:{"target_vol":0.3,"window":72}'
    res = CliRunner().invoke(
        app, ["export-combiner", key, "--out", str(out), "--strategies", ",".join(STRATS)]
    )
    assert res.exit_code == 0, res.output
    data = out.read_bytes()
    assert is_combiner_artifact(data) and json.loads(data)["strategies"] == list(STRATS)
    assert data == export(key, STRATS, provenance={"strategies_from": "--strategies"}).artifact
    bad = CliRunner().invoke(app, ["export-combiner", 'ridge:{"lam":1.0}', "--out", str(out)])
    assert bad.exit_code == 2 and "not exportable" in bad.output
    assert CliRunner().invoke(app, ["export-combiner", key]).exit_code == 2  # neither --out nor --register
