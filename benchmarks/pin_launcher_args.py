"""Pin the launcher argument definitions fleetsim's exporters emit (names, types, choices).

Reads the definitions from git snapshots of the launchers' repositories (AST only, nothing of
theirs is imported or copied) and writes tests/data/launchers/<target>.json with the source
repo, commit, date and paths; the export tests check every flag/key against these files.

    python benchmarks/pin_launcher_args.py --megatron DIR --torchtitan DIR --deepspeed DIR \
        --nemo DIR [--torchtitan-rev v0.2.2] [--out tests/data/launchers]
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
from pathlib import Path
from typing import Any

_SCALARS = {"int": "int", "float": "float", "str": "str", "bool": "bool", "Path": "str"}


def _git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True,
                          text=True).stdout


def _source(repo: str, name: str, rev: str, paths: list[str]) -> dict[str, Any]:
    commit = _git(repo, "rev-parse", f"{rev}^{{commit}}").strip()
    date = _git(repo, "log", "-1", "--format=%cI", commit).strip()
    return {"repo": name, "rev": rev, "commit": commit, "date": date, "paths": paths}


def _annotation(node: ast.expr | None) -> dict[str, Any]:
    """{'type': int|float|str|bool|list|any, 'choices'?: [...], 'nargs'?: '+'} of an annotation."""
    if node is None:
        return {"type": "any"}
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _annotation(ast.parse(node.value, mode="eval").body)
    if isinstance(node, ast.Name):
        return {"type": _SCALARS.get(node.id, "any")}
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # X | None
        parts = [p for p in (node.left, node.right)
                 if not (isinstance(p, ast.Constant) and p.value is None)]
        return _annotation(parts[0]) if len(parts) == 1 else {"type": "any"}
    if isinstance(node, ast.Subscript):
        head = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
        inner = node.slice
        if head == "Optional":
            return _annotation(inner)
        if head == "Literal":
            elts = inner.elts if isinstance(inner, ast.Tuple) else [inner]
            values = [ast.literal_eval(e) for e in elts]
            kinds = {type(v).__name__ for v in values if v is not None}
            return {"type": kinds.pop() if len(kinds) == 1 else "any",
                    "choices": [v for v in values if v is not None]}
        if head == "Union":
            elts = [e for e in inner.elts if not (isinstance(e, ast.Constant) and e.value is None)]
            return _annotation(elts[0]) if len(elts) == 1 else {"type": "any"}
        if head in ("list", "List"):
            return {**_annotation(inner), "nargs": "+"}
    return {"type": "any"}


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError):
        return None


def _dataclass_fields(text: str) -> dict[str, dict[str, dict[str, Any]]]:
    """{class: {field: {type, choices?, default?, meta?}}} of every class with annotated fields."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for cls in ast.walk(ast.parse(text)):
        if not isinstance(cls, ast.ClassDef):
            continue
        fields: dict[str, dict[str, Any]] = {}
        for stmt in cls.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            info = _annotation(stmt.annotation)
            value = stmt.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", "") in ("field", "Field"):
                kw = {k.arg: k.value for k in value.keywords}
                if "alias" in kw:
                    info["alias"] = _literal(kw["alias"])
                if "metadata" in kw:
                    meta = _literal(kw["metadata"]) or {}
                    names = meta.get("argparse_meta", {}).get("arg_names")
                    if names:
                        info["arg_names"] = names
                default = kw.get("default", value.args[0] if value.args else None)
                info["default"] = _literal(default) if default is not None else None
            elif value is not None:
                info["default"] = _literal(value)
            fields[stmt.target.id] = info
        if fields:
            out[cls.name] = fields
    return out


def pin_megatron(repo: str, rev: str) -> dict[str, Any]:
    """Megatron-LM's pretrain_gpt.py flags: add_argument literals in arguments.py plus the
    flags ArgumentGroupFactory derives from config dataclasses (--field-name; bools are
    store_true, or --no-/--disable- when they default to True)."""
    args_path = "megatron/training/arguments.py"
    cfg_paths = ["megatron/core/model_parallel_config.py",
                 "megatron/core/transformer/transformer_config.py",
                 *[p for p in _git(repo, "ls-tree", "-r", "--name-only", rev,
                                   "megatron/training/config").split()
                   if p.endswith(".py")]]
    flags: dict[str, dict[str, Any]] = {}
    for path in cfg_paths:
        for fields in _dataclass_fields(_git(repo, "show", f"{rev}:{path}")).values():
            for name, info in fields.items():
                if name.startswith("_"):
                    continue
                spec = {k: v for k, v in info.items() if k in ("type", "choices", "nargs")}
                names = info.get("arg_names") or ["--" + name.replace("_", "-")]
                if spec["type"] == "bool" and info.get("default") is True:
                    names = ["--no-" + name.replace("_", "-"),
                             "--disable-" + name.replace("_", "-")]
                for n in names:
                    flags.setdefault(n, spec)
    tree = ast.parse(_git(repo, "show", f"{rev}:{args_path}"))
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "add_argument"):
            continue
        names = [a.value for a in call.args if isinstance(a, ast.Constant)
                 and isinstance(a.value, str) and a.value.startswith("--")]
        if not names:
            continue
        kw = {k.arg: k.value for k in call.keywords}
        action = _literal(kw["action"]) if "action" in kw else None
        if action in ("store_true", "store_false"):
            spec: dict[str, Any] = {"type": "bool"}
        else:
            tnode = kw.get("type")
            tname = getattr(tnode, "id", None) or getattr(tnode, "attr", None) or "str"
            spec = {"type": _SCALARS.get(tname, "any")}
            if "choices" in kw and _literal(kw["choices"]) is not None:
                spec["choices"] = list(_literal(kw["choices"]))
            if "nargs" in kw:
                spec["nargs"] = _literal(kw["nargs"])
        for n in names:
            flags[n] = spec  # an explicit add_argument wins over a derived one
    return {"source": _source(repo, "NVIDIA/Megatron-LM", rev, [args_path, *cfg_paths]),
            "flags": dict(sorted(flags.items()))}


def pin_torchtitan(repo: str, rev: str) -> dict[str, Any]:
    """torchtitan's TOML job config: [section] -> {key: type/choices} from JobConfig."""
    path = "torchtitan/config/job_config.py"
    classes = _dataclass_fields(_git(repo, "show", f"{rev}:{path}"))
    text = _git(repo, "show", f"{rev}:{path}")
    sections: dict[str, Any] = {}
    for cls in ast.walk(ast.parse(text)):
        if isinstance(cls, ast.ClassDef) and cls.name == "JobConfig":
            for stmt in cls.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.annotation, ast.Name):
                    sub = classes.get(stmt.annotation.id, {})
                    sections[stmt.target.id] = {k: {x: v for x, v in i.items()
                                                    if x in ("type", "choices", "nargs")}
                                                for k, i in sub.items()}
    return {"source": _source(repo, "pytorch/torchtitan", rev, [path]), "sections": sections}


def pin_deepspeed(repo: str, rev: str) -> dict[str, Any]:
    """DeepSpeed ds_config keys: runtime/constants.py top-level names, zero_optimization
    fields (their JSON aliases) and offload_optimizer fields, with pydantic types."""
    paths = ["deepspeed/runtime/constants.py", "deepspeed/runtime/zero/config.py",
             "deepspeed/runtime/zero/offload_config.py", "deepspeed/runtime/precision_config.py"]
    consts = {}
    for node in ast.parse(_git(repo, "show", f"{rev}:{paths[0]}")).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and \
                isinstance(node.value.value, str) and node.targets[0].id.isupper():
            consts[node.targets[0].id] = node.value.value
    top = {consts[k]: {"type": "int"} for k in
           ("TRAIN_BATCH_SIZE", "TRAIN_MICRO_BATCH_SIZE_PER_GPU", "GRADIENT_ACCUMULATION_STEPS")}
    top.update({consts[k]: {"type": "float"} for k in ("GRADIENT_CLIPPING",) if k in consts})
    if "COMMUNICATION_DATA_TYPE" in consts:  # runtime/config.py get_communication_data_type
        top[consts["COMMUNICATION_DATA_TYPE"]] = {"type": "str", "choices": ["fp16", "bf16",
                                                                              "fp32"]}
    zero = _dataclass_fields(_git(repo, "show", f"{rev}:{paths[1]}"))["DeepSpeedZeroConfig"]
    off = _dataclass_fields(_git(repo, "show", f"{rev}:{paths[2]}"))
    prec = _dataclass_fields(_git(repo, "show", f"{rev}:{paths[3]}"))

    def keys(fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {i.get("alias") or k: {x: v for x, v in i.items() if x in ("type", "choices")}
                for k, i in fields.items()}

    zkeys = keys(zero)
    zkeys["stage"] = {"type": "int", "choices": [0, 1, 2, 3]}  # ZeroStageEnum(int, Enum)
    okeys = keys(off["DeepSpeedZeroOffloadOptimizerConfig"])
    okeys["device"] = {"type": "str", "choices": ["none", "cpu", "nvme"]}  # OffloadDeviceEnum
    pkeys = keys(off["DeepSpeedZeroOffloadParamConfig"])
    pkeys["device"] = {"type": "str", "choices": ["none", "cpu", "nvme"]}
    return {"source": _source(repo, "deepspeedai/DeepSpeed", rev, paths), "top": top,
            "zero_optimization": zkeys, "offload_optimizer": okeys,
            "offload_param": pkeys,
            "bf16": keys(prec.get("DeepSpeedBF16Config", {"enabled": {"type": "bool"}})),
            "fp16": keys(prec.get("DeepSpeedFP16Config", {"enabled": {"type": "bool"}}))}


def pin_nemo(repo: str, rev: str) -> dict[str, Any]:
    """NeMo's megatron GPT Hydra config: every dotted key with the type of its default."""
    import yaml

    path = "examples/nlp/language_modeling/conf/megatron_gpt_config.yaml"
    raw = yaml.safe_load(_git(repo, "show", f"{rev}:{path}"))
    keys: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}{k}.", v) if isinstance(v, dict) else \
                    keys.__setitem__(f"{prefix}{k}", {"type": _yaml_type(v)})

    walk("", raw)
    return {"source": _source(repo, "NVIDIA/NeMo", rev, [path]), "keys": keys}


def _yaml_type(value: Any) -> str:
    if value is None:
        return "any"
    return {"bool": "bool", "int": "int", "float": "float", "str": "str",
            "list": "list"}.get(type(value).__name__, "any")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("megatron", "torchtitan", "deepspeed", "nemo"):
        ap.add_argument(f"--{name}", required=True, help=f"git dir of {name}")
    ap.add_argument("--torchtitan-rev", default="v0.2.2",
                    help="the last release with TOML job configs (v0.2.2, 2026-02-20)")
    ap.add_argument("--out", default="tests/data/launchers")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in (("megatron", pin_megatron(a.megatron, "HEAD")),
                       ("torchtitan", pin_torchtitan(a.torchtitan, a.torchtitan_rev)),
                       ("deepspeed", pin_deepspeed(a.deepspeed, "HEAD")),
                       ("nemo", pin_nemo(a.nemo, "HEAD"))):
        (out / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
        print(name, data["source"]["commit"][:12])


if __name__ == "__main__":
    main()
