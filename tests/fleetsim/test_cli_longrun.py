"""CLI: the run: section of `simulate train` (seeds from the YAML, lost-time hints)."""

from __future__ import annotations

from pathlib import Path

LONG = str(Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
           / "llama3-405b-16k-54d.yaml")


def test_run_seeds_in_yaml_is_the_default(cli_json) -> None:
    out = cli_json("simulate", "train", LONG, "--set", "run.duration=2d", "--set", "run.seeds=3")
    assert out["seeds"] == 3 and out["ettr_p5"] <= out["ettr"] <= out["ettr_p95"]
    one = cli_json("simulate", "train", LONG, "--set", "run.duration=2d", "--set", "run.seeds=3",
                   "--seeds", "1")
    assert "seeds" not in one  # --seeds still overrides
