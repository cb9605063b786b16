"""Profiles in the typed specs: scenario keys resolve (relative path, bundled name, 'defaults',
per replica group), the resolved DeviceProfile rides on the plans into every cost, the
command-line choice overrides the keys, and everything pickles for executors."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from _profiles import half_gemm_profile

from hwmodels import ops
from hwmodels.catalog import load_device
from hwmodels.errors import ConfigError
from simulator import profiles as profiles_mod
from simulator.longrun.simulate import default_iteration_time_fn
from simulator.profiles import ProfileChoice, resolve_scenario_profile
from simulator.serving import build_group_setup, load_serving_scenario
from simulator.training import load_training_scenario, simulate_training

# one 2048-token prompt prefilled: (prefill tokens, attention units, decodes, context,
# prefill sequences, cached prefix tokens) as simulator.serving.steptime's StepCost takes them
PREFILL = (2048, 2048 * 2048 / 2, 0, 0, 1, 0.0)




def _train(profile: Any = None) -> dict[str, Any]:
    cluster: dict[str, Any] = {"device": "h100-sxm", "num_devices": 8, "devices_per_node": 8}
    if profile is not None:
        cluster["profile"] = profile
    return {"model": "llama3-8b", "cluster": cluster,
            "training": {"seq_len": 2048, "global_batch": 16, "micro_batch": 1},
            "parallelism": {"tp": 2, "pp": 2, "dp": "auto"},
            "run": {"duration": "1d", "failures": {"model": "llama3"}}}


def _fleet(**groups: Any) -> dict[str, Any]:
    """A two-device fleet: one H100 and one A100 group."""
    h100 = {"name": "h100", "device": "h100-sxm", "count": 1, **groups.get("h100", {})}
    a100 = {"name": "a100", "device": "a100-80gb", "count": 1, **groups.get("a100", {})}
    return {"model": "llama3-8b", "cluster": {"device": "a100-80gb"},
            "serving": {"replica_groups": [h100, a100]},
            "workload": {"synthetic": {"num_requests": 10}}}


def _bundled(device: str) -> object:
    """What an unnamed device resolves to: its bundled profile, else the catalog defaults."""
    return ops.resolve_profile(load_device(device))


def test_training_key_relative_path_reaches_the_plan_and_the_cost(tmp_path: Path) -> None:
    half_gemm_profile(tmp_path / "half.json", "h100-sxm")
    file = str(tmp_path / "s.yaml")
    sc = load_training_scenario(_train("half.json"), file=file)
    assert sc.profile is not None and sc.profile.name == "h100-sxm-half-gemm"
    assert sc.plan().profile is sc.profile
    base = load_training_scenario(_train("defaults"), file=file)
    assert base.profile is not None and base.profile.is_defaults
    slow, fast = simulate_training(sc.plan()), simulate_training(base.plan())
    assert slow.breakdown.compute_s > 1.3 * fast.breakdown.compute_s
    # the long run's iteration time (other DP sizes too) uses the same profile
    fn_slow, fn_fast = default_iteration_time_fn(sc), default_iteration_time_fn(base)
    assert fn_slow(sc.parallel.dp) == pytest.approx(slow.iteration_time_s)
    assert fn_slow(1) > fn_fast(1)
    assert pickle.loads(pickle.dumps(fn_slow)).profile == sc.profile


def test_missing_key_is_bundled_or_defaults_and_a_bundled_name_resolves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sc = load_training_scenario(_train(), file=None)
    assert sc.profile == _bundled("h100-sxm")  # the bundled profile, else catalog defaults
    path = half_gemm_profile(tmp_path / "h100-sxm.json", "h100-sxm")
    monkeypatch.setattr(profiles_mod, "bundled_profiles", lambda: {"h100-vendor": path})
    prof = resolve_scenario_profile("h100-vendor", load_device("h100-sxm"), file="x.yaml")
    assert prof.name == "h100-sxm-half-gemm" and prof.source == str(path)


def test_training_key_of_another_device_names_file_key_and_device(tmp_path: Path) -> None:
    half_gemm_profile(tmp_path / "a100.json", "a100-80gb")
    file = str(tmp_path / "s.yaml")
    with pytest.raises(ConfigError) as err:
        load_training_scenario(_train("a100.json"), file=file)
    assert err.value.file == file and err.value.key == "cluster.profile"
    assert "a100-80gb" in str(err.value) and "h100-sxm" in str(err.value)


def test_per_group_profiles_on_a_two_device_fleet(tmp_path: Path) -> None:
    half_gemm_profile(tmp_path / "h100-half.json", "h100-sxm")
    file = str(tmp_path / "fleet.yaml")
    sc = load_serving_scenario(_fleet(h100={"profile": "h100-half.json"}), file=file)
    h100, a100 = sc.replica_groups()
    assert h100.profile is not None and h100.profile.name == "h100-sxm-half-gemm"
    assert a100.profile == _bundled("a100-80gb")
    assert set(sc.profiles()) == {"h100-sxm", "a100-80gb"}
    plain = load_serving_scenario(_fleet(), file=file)
    slow = build_group_setup(sc, h100).step_cost
    fast = build_group_setup(plain, plain.replica_groups()[0]).step_cost
    # one 2048-token prefill on the H100 group: compute-bound, so the halved GEMM shows
    assert slow(*PREFILL) > 1.3 * fast(*PREFILL)
    a_slow = build_group_setup(sc, a100).step_cost
    a_fast = build_group_setup(plain, plain.replica_groups()[1]).step_cost
    assert a_slow(*PREFILL) == a_fast(*PREFILL)
    assert pickle.loads(pickle.dumps(sc)).replica_groups()[0].profile == h100.profile


def test_group_profile_of_another_device_names_the_group_key(tmp_path: Path) -> None:
    half_gemm_profile(tmp_path / "l4.json", "l4")
    file = str(tmp_path / "fleet.yaml")
    with pytest.raises(ConfigError) as err:
        load_serving_scenario(_fleet(a100={"profile": "l4.json"}), file=file)
    assert err.value.file == file
    assert err.value.key == "serving.replica_groups[1].profile"
    assert "'l4'" in str(err.value) and "a100-80gb" in str(err.value)


def test_cluster_profile_applies_to_groups_of_the_cluster_device(tmp_path: Path) -> None:
    half_gemm_profile(tmp_path / "a100-half.json", "a100-80gb")
    raw = _fleet()
    raw["cluster"]["profile"] = "a100-half.json"
    sc = load_serving_scenario(raw, file=str(tmp_path / "fleet.yaml"))
    h100, a100 = sc.replica_groups()
    assert a100.profile is not None and a100.profile.name == "a100-80gb-half-gemm"
    assert h100.profile == _bundled("h100-sxm")


def test_command_line_choice_overrides_keys_and_refuses_unused_devices(tmp_path: Path
                                                                       ) -> None:
    half_gemm_profile(tmp_path / "h100-half.json", "h100-sxm")
    h100 = str(half_gemm_profile(tmp_path / "h100-cli.json", "h100-sxm"))
    l4 = str(half_gemm_profile(tmp_path / "l4.json", "l4"))
    file = str(tmp_path / "fleet.yaml")
    raw = _fleet(h100={"profile": "h100-half.json"})
    off = load_serving_scenario(raw, file=file, profiles=ProfileChoice(no_profile=True))
    assert all(g.profile is not None and g.profile.is_defaults for g in off.replica_groups())
    cli = load_serving_scenario(raw, file=file, profiles=ProfileChoice.from_paths([h100]))
    assert cli.replica_groups()[0].profile.source == h100  # type: ignore[union-attr]
    with pytest.raises(ConfigError) as err:
        load_serving_scenario(raw, file=file, profiles=ProfileChoice.from_paths([l4]))
    assert err.value.key == "--profile" and "'l4'" in str(err.value)
    assert "a100-80gb, h100-sxm" in str(err.value)
    with pytest.raises(ConfigError):
        ProfileChoice.from_paths([h100], no_profile=True)


def test_choice_pickles_and_hashes(tmp_path: Path) -> None:
    choice = ProfileChoice.from_paths([str(half_gemm_profile(tmp_path / "p.json", "l4"))])
    back = pickle.loads(pickle.dumps(choice))
    assert back == choice and hash(back) == hash(choice)
    assert back.for_device("l4").name == "l4-half-gemm"
    assert back.for_device("h100-sxm") == _bundled("h100-sxm")
