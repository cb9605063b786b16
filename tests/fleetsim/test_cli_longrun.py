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


def test_no_spares_says_what_dominated_the_lost_time(cli) -> None:
    code, out, err = cli("simulate", "train", LONG, "--set", "run.duration=7d",
                         "--set", "run.spares=0", "--json")
    assert code == 0
    data = __import__("json").loads(out)
    assert data["time_lost_s"]["waiting_spare"] > 0.5 * data["wall_s"]
    assert "waiting for repairs" in data["hint"] and "run.spares" in data["hint"]
    assert "hint:" in err and "run.spares" in err


def test_healthy_run_has_no_hint(cli_json) -> None:
    out = cli_json("simulate", "train", LONG, "--set", "run.duration=2d")
    assert "hint" not in out


def test_broken_long_run_exits_4_naming_the_scenario(cli, monkeypatch) -> None:
    import dataclasses

    from simulator.longrun import engine

    real = engine._Run.run

    def broken(self):  # type: ignore[no-untyped-def]
        r = real(self)
        return dataclasses.replace(r, productive_s=2 * r.wall_s, ettr=2.0)

    monkeypatch.setattr(engine._Run, "run", broken)
    code, _, err = cli("simulate", "train", LONG, "--set", "run.duration=2d")
    assert code == 4, err
    assert "llama3-405b" in err and "invariant" in err
