"""CLI bad input: one line on stderr and exit 2, never a traceback; outputs checked up front."""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

SCEN = Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
TRAIN = str(SCEN / "gpt3-175b-a100.yaml")
SERVE = str(SCEN / "llama2-70b-h100-azure.yaml")
LONG = str(SCEN / "llama3-405b-16k-54d.yaml")
NOT_UTF8 = b"name: x\n\xff\xfe bad: 1\n"


def one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.fixture()
def no_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any simulation starts (outputs must be refused before one runs)."""
    import importlib

    import simulator.serving
    import simulator.training

    sweep_module = importlib.import_module("planners.sweep")

    def boom(*_a: object, **_k: object) -> None:
        raise AssertionError("a simulation ran before the output path was checked")

    monkeypatch.setattr(simulator.training, "simulate_training", boom)
    monkeypatch.setattr(simulator.serving, "simulate_serving", boom)
    monkeypatch.setattr(simulator.serving, "load_workload", boom)
    monkeypatch.setattr(sweep_module, "sweep", boom)


# ------------------------------------------------------------------ unreadable input files

def test_non_utf8_scenario_is_one_line(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(NOT_UTF8)
    code, _, err = cli("simulate", "train", str(bad))
    one_line_error(code, err, str(bad), "UTF-8")


def test_non_utf8_model_file_via_set(cli, tmp_path: Path) -> None:
    bad = tmp_path / "model.yaml"
    bad.write_bytes(NOT_UTF8)
    code, _, err = cli("simulate", "train", TRAIN, "--set", f"model={bad}")
    one_line_error(code, err, str(bad), "UTF-8")
    code, _, err = cli("models", "show", str(bad))
    one_line_error(code, err, str(bad))


def test_non_utf8_catalog_file(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hwmodels import catalog

    (tmp_path / "devices.yaml").write_bytes(NOT_UTF8)
    monkeypatch.setenv("FLEETSIM_CATALOG", str(tmp_path))
    catalog.clear_cache()
    try:
        code, _, err = cli("hw", "list")
    finally:
        monkeypatch.delenv("FLEETSIM_CATALOG")
        catalog.clear_cache()
    one_line_error(code, err, "devices.yaml", "UTF-8")


def test_model_config_json_that_is_a_directory(cli, tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()
    code, _, err = cli("models", "show", str(tmp_path / "config.json"))
    one_line_error(code, err, "config.json", "directory")


def test_profile_not_utf8(cli, tmp_path: Path) -> None:
    bad = tmp_path / "p.json"
    bad.write_bytes(b"\xff\xff")
    code, _, err = cli("estimate", "step", "--model", "llama2-7b", "--device", "h100-sxm",
                       "--decode-seqs", "1", "--context", "16", "--profile", str(bad))
    one_line_error(code, err, str(bad))


def test_trace_that_is_a_directory(cli, tmp_path: Path) -> None:
    code, _, err = cli("simulate", "serve", SERVE, "--trace", str(tmp_path), "--no-progress")
    one_line_error(code, err, str(tmp_path), "directory")
    code, _, err = cli("traces", "stats", str(tmp_path))
    one_line_error(code, err, str(tmp_path), "directory")


def test_trace_not_utf8_jsonl(cli, tmp_path: Path) -> None:
    bad = tmp_path / "t.jsonl"
    bad.write_bytes(b'{"arrival_time_s": 0, "input_tokens": 1, "output_tokens": 1}\n\xff\xfe\n')
    code, _, err = cli("traces", "stats", str(bad))
    one_line_error(code, err, str(bad), "UTF-8")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads a chmod 000 file")
def test_unreadable_trace(cli, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("arrival_time_s,input_tokens,output_tokens\n0,1,1\n")
    path.chmod(0)
    try:
        code, _, err = cli("traces", "stats", str(path))
    finally:
        path.chmod(0o644)
    one_line_error(code, err, str(path))


# ------------------------------------------------------------------ messages and values

def test_error_prefix_not_repeated(cli) -> None:
    code, _, err = cli("simulate", "train", TRAIN, "--set", "model=no-such-model")
    one_line_error(code, err, "unknown model 'no-such-model'")
    assert err.count("key 'model'") == 1 and err.count("gpt3-175b-a100.yaml") == 1, err
    code, _, err = cli("simulate", "serve", SERVE, "--set", "model=no-such-model",
                       "--no-progress")
    one_line_error(code, err, "llama2-70b-h100-azure.yaml", "unknown model")
    assert err.count("key 'model'") == 1, err


def test_catalog_entry_error_prefix_not_repeated(cli, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from hwmodels import catalog

    (tmp_path / "devices.yaml").write_text(
        "foo:\n  kind: gpu\n  vendor: x\n  peak_tflops: {bf16: 100}\n  memory_gib: 80\n"
        "  memory_bw_gbps: 1000\n  scale_up_link: nvlink4\n  scale_up_bw_gbps: 100\n"
        "  tdp_w: 100\n  idle_w: 200\n  price_usd_per_hour: 1\n")
    monkeypatch.setenv("FLEETSIM_CATALOG", str(tmp_path))
    catalog.clear_cache()
    try:
        code, _, err = cli("hw", "show", "foo")
    finally:
        monkeypatch.delenv("FLEETSIM_CATALOG")
        catalog.clear_cache()
    one_line_error(code, err, "devices.yaml", "key 'foo.idle_w'", "must be below tdp_w")
    assert err.count("key '") == 1, err


def test_config_error_with_context_keeps_message() -> None:
    from hwmodels.errors import ConfigError

    inner = ConfigError("unknown model 'x'", key="model", allowed=["a", "b"])
    outer = inner.with_context(file="s.yaml", key="model")
    assert str(outer) == "s.yaml: key 'model': unknown model 'x' (allowed: a, b)"
    assert outer.with_context(file="other.yaml") is outer


def test_empty_set_model(cli) -> None:
    code, _, err = cli("simulate", "train", TRAIN, "--set", "model=")
    one_line_error(code, err, "--set model", "empty")
    assert "directory" not in err


def test_empty_model_name_api() -> None:
    from hwmodels.catalog import load_model
    from hwmodels.errors import ConfigError

    with pytest.raises(ConfigError, match="empty model name"):
        load_model("")


@pytest.mark.parametrize("key", ["chunk_size", "tp", "pp", "max_num_seqs"])
def test_null_for_a_non_optional_serving_key(cli, key: str) -> None:
    code, _, err = cli("simulate", "serve", SERVE, "--set", f"serving.{key}=null",
                       "--no-progress")
    one_line_error(code, err, f"serving.{key}", "null", "int")


@dataclass(frozen=True)
class _Inner:
    a: int = 1


@dataclass(frozen=True)
class _Section:
    n: int = 4
    opt: int | None = 7
    inner: _Inner = _Inner()


def test_schema_null_rules() -> None:
    from hwmodels.errors import ConfigError
    from simulator.schema import read_section

    Section = _Section  # noqa: N806
    with pytest.raises(ConfigError, match=r"key 's\.n': null is not allowed.*int"):
        read_section({"n": None}, Section, file="f.yaml", section="s")
    assert read_section({"opt": None, "inner": None}, Section) == Section()


@pytest.mark.parametrize("args", [
    ("simulate", "train", LONG, "--seed", "-1"),
    ("simulate", "train", LONG, "--seeds", "0"),
    ("simulate", "train", LONG, "--seeds", "-3"),
    ("simulate", "serve", SERVE, "--seed", "-1", "--no-progress"),
    ("traces", "synth", "--out", "t.csv", "--seed", "-1"),
])
def test_negative_seeds(cli, args: tuple[str, ...], no_simulation: None) -> None:
    code, _, err = cli(*args)
    one_line_error(code, err, "--seed")


# ------------------------------------------------------------------ outputs, checked first

OUTPUTS = [
    ("simulate", "train", TRAIN, "--timeline", "{p}/t.json"),
    ("simulate", "train", TRAIN, "--plot", "{p}/g.png"),
    ("simulate", "train", LONG, "--progress-plot", "{p}/p.png"),
    ("simulate", "serve", SERVE, "--no-progress", "--records", "{p}/r.csv"),
    ("simulate", "serve", SERVE, "--no-progress", "--plots", "{p}/plots"),
    ("traces", "synth", "--out", "{p}/t.csv"),
    ("demo", "--out", "{p}/report"),
    ("calibrate", "--device", "cpu", "--out", "{p}/prof.json"),
    ("sweep", TRAIN, "--grid", "parallelism.tp=4,8", "--out", "{p}/s.csv"),
    ("sweep", TRAIN, "--grid", "parallelism.tp=4,8", "--out", "s.csv", "--plot", "{p}/s.png"),
    ("plan", "power", "--budget-kw", "100", "--plot", "{p}/p.png"),
    ("plan", "gpu-mix", "--model", "llama2-7b", "--trace", "azure-conv-2023-sample",
     "--devices", "l4", "--slo-ttft", "1", "--slo-tpot", "0.1", "--plot", "{p}/m.png"),
    ("plan", "serve", "--model", "llama2-7b", "--plot", "{p}/c.png"),
    ("plan", "serve", "--model", "llama2-7b", "--out", "{p}/plans.csv"),
]


def _option_of(args: tuple[str, ...]) -> str:
    return next(args[i - 1] for i, a in enumerate(args) if "{p}" in a)


@pytest.mark.parametrize("args", OUTPUTS, ids=lambda a: " ".join(a[:2]) + " " + _option_of(a))
def test_missing_output_directory_refused_first(cli, tmp_path: Path, args: tuple[str, ...],
                                                no_simulation: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "no" / "such"
    code, _, err = cli(*(a.format(p=missing) for a in args))
    one_line_error(code, err, _option_of(args), str(missing), "--mkdir")
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("args", OUTPUTS, ids=lambda a: " ".join(a[:2]) + " " + _option_of(a))
def test_output_under_a_file_refused_first(cli, tmp_path: Path, args: tuple[str, ...],
                                           no_simulation: None,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A parent that is a file cannot be created even with --mkdir: one line, not OSError."""
    monkeypatch.chdir(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = cli(*(a.format(p=afile / "sub") for a in args), "--mkdir")
    one_line_error(code, err, _option_of(args))


@pytest.mark.parametrize("args", [
    ("simulate", "serve", SERVE, "--no-progress", "--plots", "{f}"),
    ("demo", "--out", "{f}"),
])
def test_directory_output_that_is_a_file(cli, tmp_path: Path, args: tuple[str, ...],
                                         no_simulation: None) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = cli(*(a.format(f=afile) for a in args))
    one_line_error(code, err, "--", "not a directory")


@pytest.mark.parametrize("args", [
    ("simulate", "train", TRAIN, "--plot", "{d}/g.txt"),
    ("simulate", "train", LONG, "--progress-plot", "{d}/g.jpg"),
    ("simulate", "train", TRAIN, "--timeline", "{d}/t.csv"),
    ("simulate", "serve", SERVE, "--no-progress", "--records", "{d}/r.txt"),
    ("sweep", TRAIN, "--grid", "parallelism.tp=4,8", "--out", "{d}/s.csv", "--plot",
     "{d}/g.txt"),
    ("plan", "power", "--budget-kw", "100", "--plot", "{d}/p.txt"),
    ("traces", "synth", "--out", "{d}/t.txt"),
])
def test_bad_output_suffix_refused_first(cli, tmp_path: Path, args: tuple[str, ...],
                                         no_simulation: None) -> None:
    code, _, err = cli(*(a.format(d=tmp_path) for a in args))
    one_line_error(code, err, "suffix")


def test_file_output_that_is_a_directory(cli, tmp_path: Path, no_simulation: None) -> None:
    (tmp_path / "t.json").mkdir()
    code, _, err = cli("simulate", "train", TRAIN, "--timeline", str(tmp_path / "t.json"))
    one_line_error(code, err, "--timeline", "is a directory")


def test_mkdir_creates_parents(cli, tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "t.csv"
    code, _, err = cli("traces", "synth", "--out", str(out), "--num-requests", "20", "--mkdir")
    assert code == 0, err
    assert out.exists()


# ------------------------------------------------------------------ files written readable

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_respects_umask(tmp_path: Path, umask: int) -> None:
    from hwmodels.atomic import atomic_write_text

    old = os.umask(umask)
    try:
        path = atomic_write_text(tmp_path / "out.txt", "hello")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert path.read_text() == "hello"


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    from hwmodels.atomic import atomic_write

    def fail(p: Path) -> None:
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "out.txt", fail)
    assert list(tmp_path.iterdir()) == []


def test_cli_output_is_world_readable(cli, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        code, _, err = cli("traces", "synth", "--out", str(tmp_path / "t.csv"),
                           "--num-requests", "10")
    finally:
        os.umask(old)
    assert code == 0, err
    assert stat.S_IMODE((tmp_path / "t.csv").stat().st_mode) == 0o644


# ------------------------------------------------------------------ tables at 80 columns

def _narrow(monkeypatch: pytest.MonkeyPatch, module: str) -> io.StringIO:
    import importlib

    from rich.console import Console

    buf = io.StringIO()
    monkeypatch.setattr(importlib.import_module(module), "console",
                        Console(file=buf, width=80, color_system=None))
    return buf


def test_catalog_tables_show_whole_names_at_80_columns(cli, monkeypatch) -> None:
    from hwmodels import catalog

    buf = _narrow(monkeypatch, "fleetsim.cli.catalog_cmds")
    assert cli("hw", "list")[0] == 0
    assert cli("models", "list")[0] == 0
    text = buf.getvalue()
    assert "…" not in text
    words = set(text.split())
    for name in catalog.list_devices() + catalog.list_links() + catalog.list_models():
        assert name in words, name


def test_print_table_keeps_names_whole(monkeypatch) -> None:
    from fleetsim.cli import common

    buf = _narrow(monkeypatch, "fleetsim.cli.common")
    names = ["llama3-70b-instruct-long-name", "deepseek-v2-lite-chat-x", "qwen3-235b-a22b-moe"]
    common.print_table("t", ["name", "a", "b", "c", "d", "e"],
                       [[n, 1.23456, 22222.5, "x" * 12, "y" * 14, "z" * 15] for n in names])
    text = buf.getvalue()
    assert "…" not in text
    for n in names:
        assert n in text.split()


# ------------------------------------------------------------------ help and version

def _leaf_commands():  # type: ignore[no-untyped-def]
    import typer

    from fleetsim.cli.app import app

    def walk(cmd, path):  # type: ignore[no-untyped-def]
        subs = getattr(cmd, "commands", None)
        if not subs:
            yield path
            return
        for name, sub in subs.items():
            yield from walk(sub, (*path, name))

    return list(walk(typer.main.get_command(app), ()))


@pytest.mark.parametrize("path", _leaf_commands(), ids=" ".join)
def test_every_command_help_has_an_example(cli, path: tuple[str, ...]) -> None:
    code, out, _ = cli(*path, "--help")
    assert code == 0
    assert "Example" in out, path
    assert f"fleetsim {' '.join(path)}" in " ".join(out.split()), path


def test_serve_set_example_uses_serving_keys(cli) -> None:
    code, out, _ = cli("simulate", "serve", "--help")
    assert code == 0
    assert "parallelism.tp" not in out and "serving.tp" in out


def test_version(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    import fleetsim

    code, out, _ = cli("--version")
    assert code == 0
    assert out.strip() == f"fleetsim {importlib.metadata.version('fleetsim')}"

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"fleetsim {fleetsim.__version__}"


@pytest.mark.parametrize("args", [
    ("simulate", "train", ""),
    ("traces", "stats", ""),
    ("traces", "synth", "--out", ""),
    ("simulate", "serve", SERVE, "--trace", "", "--no-progress"),
])
def test_empty_paths(cli, args: tuple[str, ...]) -> None:
    code, _, err = cli(*args)
    one_line_error(code, err, "empty")
    assert "directory" not in err


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_calibrate_bad_memory_bandwidth(cli, tmp_path: Path, value: str) -> None:
    code, _, err = cli("calibrate", "--device", "cpu", "--out", str(tmp_path / "p.json"),
                       "--mem-bw-gbps", value)
    one_line_error(code, err, "key '--mem-bw-gbps'", "must be a finite number > 0")
    assert "--peak-tflops" not in err
    assert not (tmp_path / "p.json").exists()
