"""ModelSpec from a Hugging Face config.json mapping (or our normalized ModelSpec key names).

Supported `model_type`s: llama, mistral, qwen2, qwen3 (gated SiLU MLP, RMSNorm), mixtral,
qwen2_moe, qwen3_moe (MoE), deepseek_v2, deepseek_v3 (MLA + MoE), and gpt2, bloom, mpt, opt,
gpt_neox, gptj, falcon (plain two-matrix MLP, LayerNorm). Every ModelSpec field name (num_layers,
num_heads, num_kv_heads, ffn_hidden_size, num_experts, ...) is accepted as an alternative to the
HF key, and wins when both are given; a mapping with `num_layers` and no model_type is read
as llama-like.

What is approximated (parameter counts stay within ~0.1% of the published totals):
- DeepSeek MLA: weights counted exactly from the lora ranks (q_a/q_b or q, kv_a, kv_b, o and
  the two latent RMSNorms); head_dim := qk_nope_head_dim + qk_rope_head_dim (the q/k width);
  the KV cache is (kv_lora_rank + qk_rope_head_dim) values per token per layer (memory.py).
  The multi-token-prediction module (num_nextn_predict_layers) and the router's score
  correction bias are ignored; moe_layer_freq > 1 is folded into first_dense_layers.
- Qwen-MoE decoder_sparse_step / mlp_only_layers: the dense layers are counted, but modelled
  as the first ones (ModelSpec keeps dense layers first). Qwen2-MoE's 1-output shared-expert
  gate is ignored.
- BLOOM's embedding LayerNorm, Falcon-7B's single shared LayerNorm per layer and OPT's two
  extra position rows are not modelled (each < 0.01% of the parameters).
- Activation functions are not distinguished beyond gated (SwiGLU/GeGLU) vs plain (GELU/ReLU).

Unknown keys are ignored (real config.json files carry dozens: rope_theta, torch_dtype, ...),
except ones that look like a misspelt key we read ("num_hiden_layers"), which raise ConfigError
rather than silently falling back to a default.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hwmodels.errors import ConfigError
from hwmodels.specs import AttentionKind, ModelSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class _Family:
    """How one HF model_type spells its dimensions and which defaults it implies."""

    gated_mlp: bool
    tie_default: bool
    moe: str = ""  # "", "mixtral", "qwen", "deepseek"
    qkv_bias: bool = False
    linear_bias: bool = False
    norm_bias: bool = False
    learned_pos_emb: bool = False
    qk_norm: bool = False
    ffn_mult_default: int = 0  # 0: the ffn width key is required; k: defaults to k * hidden
    max_seq_default: int = 4096
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


_LLAMA = _Family(gated_mlp=True, tie_default=False)
_GPT2_ALIASES = {"num_layers": ("n_layer",), "hidden_size": ("n_embd",),
                 "num_heads": ("n_head",), "ffn_hidden_size": ("n_inner",),
                 "max_seq_len": ("n_positions",)}

FAMILIES: dict[str, _Family] = {
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _Family(gated_mlp=True, tie_default=False, qkv_bias=True),
    "qwen3": _Family(gated_mlp=True, tie_default=False, qk_norm=True),
    "mixtral": _Family(gated_mlp=True, tie_default=False, moe="mixtral"),
    "qwen2_moe": _Family(gated_mlp=True, tie_default=False, moe="qwen", qkv_bias=True),
    "qwen3_moe": _Family(gated_mlp=True, tie_default=False, moe="qwen", qk_norm=True),
    "deepseek_v2": _Family(gated_mlp=True, tie_default=False, moe="deepseek"),
    "deepseek_v3": _Family(gated_mlp=True, tie_default=False, moe="deepseek"),
    "gpt2": _Family(gated_mlp=False, tie_default=True, linear_bias=True, norm_bias=True,
                    learned_pos_emb=True, ffn_mult_default=4, max_seq_default=1024,
                    aliases=_GPT2_ALIASES),
    "bloom": _Family(gated_mlp=False, tie_default=True, linear_bias=True, norm_bias=True,
                     ffn_mult_default=4,
                     aliases={"num_layers": ("n_layer",), "num_heads": ("n_head",),
                              "hidden_size": ("n_embed",), "max_seq_len": ("seq_length",)}),
    "mpt": _Family(gated_mlp=False, tie_default=True, norm_bias=True, linear_bias=True,
                   learned_pos_emb=True, max_seq_default=2048,
                   aliases={"num_layers": ("n_layers",), "hidden_size": ("d_model",),
                            "num_heads": ("n_heads",)}),
    "opt": _Family(gated_mlp=False, tie_default=True, linear_bias=True, norm_bias=True,
                   learned_pos_emb=True, max_seq_default=2048,
                   aliases={"ffn_hidden_size": ("ffn_dim",)}),
    "gpt_neox": _Family(gated_mlp=False, tie_default=False, linear_bias=True, norm_bias=True,
                        max_seq_default=2048),
    # GPT-J (EleutherAI/gpt-j-6b config.json): n_layer/n_embd/n_head/n_inner, rotary, untied
    # lm_head with bias, attention without biases (counted with linear_bias as an approximation).
    "gptj": _Family(gated_mlp=False, tie_default=False, linear_bias=True, norm_bias=True,
                    ffn_mult_default=4, max_seq_default=2048,
                    aliases={"num_layers": ("n_layer",), "hidden_size": ("n_embd",),
                             "num_heads": ("n_head",), "ffn_hidden_size": ("n_inner",),
                             "max_seq_len": ("n_positions",)}),
    "falcon": _Family(gated_mlp=False, tie_default=True, norm_bias=True, ffn_mult_default=4,
                      max_seq_default=2048,
                      aliases={"num_layers": ("n_layer",), "num_heads": ("n_head",),
                               "num_kv_heads": ("n_head_kv",)}),
}

# Normalized ModelSpec name -> the standard HF key(s); family aliases are appended.
_BASE_KEYS: dict[str, tuple[str, ...]] = {
    "num_layers": ("num_hidden_layers",),
    "hidden_size": (),
    "num_heads": ("num_attention_heads",),
    "num_kv_heads": ("num_key_value_heads",),
    "head_dim": (),
    "ffn_hidden_size": ("intermediate_size",),
    "vocab_size": (),
    "max_seq_len": ("max_position_embeddings",),
    "tie_embeddings": ("tie_word_embeddings",),
}

# Keys read somewhere below (for misspelling detection) beyond _BASE_KEYS and aliases.
_OTHER_KEYS = {
    "model_type", "name", "_name_or_path", "source", "notes", "gated_mlp", "attention",
    "trains_with_dropout",
    "num_experts", "experts_per_token", "moe_ffn_hidden_size", "num_shared_experts",
    "shared_expert_ffn_hidden_size", "first_dense_layers", "kv_lora_rank", "q_lora_rank",
    "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "qkv_bias", "linear_bias", "norm_bias",
    "learned_pos_emb", "qk_norm", "num_local_experts", "num_experts_per_tok",
    "moe_intermediate_size", "shared_expert_intermediate_size", "n_shared_experts",
    "n_routed_experts", "first_k_dense_replace", "moe_layer_freq", "decoder_sparse_step",
    "mlp_only_layers", "attention_bias", "mlp_bias", "no_bias", "expansion_ratio",
    "attn_config", "bias", "multi_query", "new_decoder_architecture", "alibi",
    "use_parallel_residual",
}

# Common config.json keys that do not change the dimensions (never reported as misspellings).
_IGNORED_KEYS = {
    "architectures", "auto_map", "bos_token_id", "eos_token_id", "pad_token_id",
    "torch_dtype", "dtype", "transformers_version", "hidden_act", "activation_function",
    "rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon", "initializer_range", "rope_theta",
    "rope_scaling", "use_cache", "attention_dropout", "hidden_dropout", "sliding_window",
    "use_sliding_window", "max_window_layers", "output_router_logits", "router_aux_loss_coef",
    "router_jitter_noise", "norm_topk_prob", "pretraining_tp", "quantization_config",
    "topk_method", "topk_group", "n_group", "routed_scaling_factor", "scoring_func", "ep_size",
    "aux_loss_alpha", "seq_aux", "num_nextn_predict_layers", "n_ctx", "resid_pdrop",
    "embd_pdrop", "attn_pdrop", "rotary_pct", "rotary_emb_base", "parallel_attn",
    "do_layer_norm_before", "word_embed_proj_dim", "layerdrop", "enable_bias",
    "emb_pdrop", "init_config", "logit_scale", "norm_type", "use_parallel_residual",
    "tokenizer_class", "hidden_dropout_prob", "attention_probs_dropout_prob",
}


def _allowed_types() -> list[str]:
    return sorted(FAMILIES)


class _Reader:
    """Typed access to a config mapping; every error names the file and the key."""

    def __init__(self, mapping: Mapping[str, Any], *, file: str | None, prefix: str,
                 family: _Family) -> None:
        self.m, self.file, self.prefix, self.family = mapping, file, prefix, family

    def keys_for(self, field_name: str) -> tuple[str, ...]:
        """Accepted keys for a ModelSpec field, normalized name first."""
        return ((field_name,) + _BASE_KEYS.get(field_name, ())
                + tuple(self.family.aliases.get(field_name, ())))

    def error(self, key: str, message: str, allowed: object = None) -> ConfigError:
        return ConfigError(message, file=self.file, key=f"{self.prefix}.{key}",
                           allowed=allowed)  # type: ignore[arg-type]

    def find(self, keys: tuple[str, ...]) -> tuple[str, Any] | None:
        for key in keys:
            if key in self.m and self.m[key] is not None:
                return key, self.m[key]
        return None

    def int_(self, keys: tuple[str, ...], default: int | None = None, *,
             minimum: int = 0) -> int:
        found = self.find(keys)
        if found is None:
            if default is None:
                shown = keys[1] if len(keys) > 1 else keys[0]
                also = [k for k in keys if k != shown]
                hint = f" (also accepted: {', '.join(also)})" if also else ""
                raise self.error(shown, "missing required key" + hint)
            return default
        key, value = found
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {value!r}")
        if value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value}")
        return value

    def bool_(self, keys: tuple[str, ...], default: bool) -> bool:
        found = self.find(keys)
        if found is None:
            return default
        key, value = found
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}",
                             allowed=["true", "false"])
        return value

    def field_int(self, name: str, default: int | None = None, *, minimum: int = 1) -> int:
        return self.int_(self.keys_for(name), default, minimum=minimum)


def _check_misspellings(mapping: Mapping[str, Any], reader: _Reader) -> None:
    """Raise for an unknown key that is a near-miss of a key we read (a likely typo)."""
    known = set(_OTHER_KEYS)
    for name in _BASE_KEYS:
        known.update(reader.keys_for(name))
    for key in mapping:
        skey = str(key)
        if skey in known or skey in _IGNORED_KEYS:
            continue
        close = difflib.get_close_matches(skey, sorted(known), n=1, cutoff=0.85)
        if close:
            raise reader.error(skey, f"unknown key '{skey}' (did you mean '{close[0]}'?)")


def _model_type(mapping: Mapping[str, Any], file: str | None, prefix: str) -> str:
    raw = mapping.get("model_type")
    if raw is None:
        if "num_layers" in mapping:
            return "llama"
        raise ConfigError("missing required key", file=file, key=f"{prefix}.model_type",
                          allowed=_allowed_types())
    model_type = str(raw).lower()
    if model_type not in FAMILIES:
        raise ConfigError(f"unknown model_type '{raw}'", file=file, key=f"{prefix}.model_type",
                          allowed=_allowed_types())
    return model_type


def _moe_fields(r: _Reader, model_type: str, num_layers: int, ffn: int) -> dict[str, int]:
    """num_experts, experts_per_token, expert widths and dense-layer count for MoE families."""
    style = r.family.moe
    explicit = r.find(("num_experts",))
    if not style and (explicit is None or explicit[1] == 0):
        return {}
    expert_keys = {"mixtral": ("num_experts", "num_local_experts"), "qwen": ("num_experts",),
                   "deepseek": ("num_experts", "n_routed_experts"), "": ("num_experts",)}[style]
    num_experts = r.int_(expert_keys, minimum=1)
    top_k = r.int_(("experts_per_token", "num_experts_per_tok"), minimum=1)
    if style == "mixtral":
        moe_ffn = r.int_(("moe_ffn_hidden_size",), ffn, minimum=1)
    else:
        moe_ffn = r.int_(("moe_ffn_hidden_size", "moe_intermediate_size"), minimum=1)
    shared_n, shared_ffn, dense = 0, 0, 0
    if style == "qwen":
        shared_ffn = r.int_(("shared_expert_ffn_hidden_size", "shared_expert_intermediate_size"),
                            0)
        shared_n = r.int_(("num_shared_experts",), 1 if shared_ffn else 0)
        step = r.int_(("decoder_sparse_step",), 1, minimum=1)
        only_dense = r.m.get("mlp_only_layers") or []
        if not isinstance(only_dense, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in only_dense):
            raise r.error("mlp_only_layers", f"expected a list of layer indices, "
                          f"got {only_dense!r}")
        moe_layers = sum(1 for i in range(num_layers)
                         if i not in only_dense and (i + 1) % step == 0)
        dense = num_layers - moe_layers
    elif style == "deepseek":
        shared_n = r.int_(("num_shared_experts", "n_shared_experts"), 0)
        shared_ffn = r.int_(("shared_expert_ffn_hidden_size",), 0)
        first_k = r.int_(("first_dense_layers", "first_k_dense_replace"), 0)
        freq = r.int_(("moe_layer_freq",), 1, minimum=1)
        moe_layers = sum(1 for i in range(first_k, num_layers) if i % freq == 0)
        dense = num_layers - moe_layers
    else:
        shared_n = r.int_(("num_shared_experts",), 0)
        shared_ffn = r.int_(("shared_expert_ffn_hidden_size",), 0)
        dense = r.int_(("first_dense_layers",), 0)
    dense = r.int_(("first_dense_layers",), dense) if style == "qwen" else dense
    return {"num_experts": num_experts, "experts_per_token": top_k, "moe_ffn_hidden_size": moe_ffn,
            "num_shared_experts": shared_n, "shared_expert_ffn_hidden_size": shared_ffn,
            "first_dense_layers": dense}


def _mla_fields(r: _Reader, *, mla: bool) -> dict[str, Any]:
    if not mla:
        return {}
    rope = r.int_(("qk_rope_head_dim",), minimum=1)
    out: dict[str, Any] = {
        "attention": AttentionKind.MLA,
        "kv_lora_rank": r.int_(("kv_lora_rank",), minimum=1),
        "q_lora_rank": r.int_(("q_lora_rank",), 0),
        "qk_rope_head_dim": rope,
        "v_head_dim": r.int_(("v_head_dim",), minimum=1),
    }
    if r.family.moe == "deepseek":  # HF's own head_dim key means the rope width here
        out["head_dim"] = r.int_(("qk_nope_head_dim",), minimum=1) + rope
    return out


def _family_flags(r: _Reader, model_type: str) -> dict[str, bool]:
    """Bias / norm / position flags: family defaults, HF switches, then normalized overrides."""
    f = r.family
    qkv_bias, linear_bias, norm_bias = f.qkv_bias, f.linear_bias, f.norm_bias
    learned = f.learned_pos_emb
    if model_type in ("llama", "mistral", "qwen3", "qwen3_moe", "deepseek_v2", "deepseek_v3"):
        attn_bias = r.bool_(("attention_bias",), False)
        qkv_bias = qkv_bias or attn_bias
        linear_bias = attn_bias and r.bool_(("mlp_bias",), False)
    elif model_type == "mpt":
        no_bias = r.bool_(("no_bias",), False)
        linear_bias = norm_bias = not no_bias
        attn_cfg = r.m.get("attn_config") or {}
        if not isinstance(attn_cfg, Mapping):
            raise r.error("attn_config", f"expected a mapping, got {attn_cfg!r}")
        # llm-foundry's MPTConfig turns learned_pos_emb off when alibi or rope is on.
        alibi_or_rope = attn_cfg.get("alibi") is True or attn_cfg.get("rope") is True
        learned = r.bool_(("learned_pos_emb",), True) and not alibi_or_rope
    elif model_type == "falcon":
        linear_bias = r.bool_(("bias",), False)
        learned = False
    elif model_type == "bloom":
        learned = False
    return {
        "qkv_bias": r.bool_(("qkv_bias",), qkv_bias),
        "linear_bias": r.bool_(("linear_bias",), linear_bias),
        "norm_bias": r.bool_(("norm_bias",), norm_bias),
        "learned_pos_emb": learned if model_type == "mpt" else  # HF key = our key there
        r.bool_(("learned_pos_emb",), learned),
        "qk_norm": r.bool_(("qk_norm",), f.qk_norm),
    }


# Dropout probabilities of HF / llm-foundry configs (any > 0: the model trains with dropout).
_DROPOUT_KEYS = ("resid_pdrop", "embd_pdrop", "emb_pdrop", "attn_pdrop", "attention_dropout",
                 "hidden_dropout", "hidden_dropout_prob", "attention_probs_dropout_prob")


def _trains_with_dropout(r: _Reader, model_type: str) -> bool | None:
    """From the config's dropout probabilities (and MPT's attn_config.attn_pdrop); None where
    it gives none. llm-foundry's MPTConfig defaults every one of them to 0.0, so an MPT config
    without them trains without dropout."""
    if "trains_with_dropout" in r.m:
        value = r.m["trains_with_dropout"]
        if value is not None and not isinstance(value, bool):
            raise r.error("trains_with_dropout", f"expected true or false, got {value!r}",
                          allowed=["true", "false"])
        return value
    probs: list[tuple[str, object]] = [(k, r.m[k]) for k in _DROPOUT_KEYS
                                       if r.m.get(k) is not None]
    attn_cfg = r.m.get("attn_config")
    if model_type == "mpt" and isinstance(attn_cfg, Mapping) and \
            attn_cfg.get("attn_pdrop") is not None:
        probs.append(("attn_config.attn_pdrop", attn_cfg["attn_pdrop"]))
    for key, value in probs:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not 0.0 <= float(value) <= 1.0:
            raise r.error(key, f"expected a dropout probability, got {value!r}",
                          allowed="0 <= p <= 1")
    if probs:
        return any(float(v) > 0.0 for _, v in probs)  # type: ignore[arg-type]
    return False if model_type == "mpt" else None


def _kv_heads(r: _Reader, model_type: str, num_heads: int) -> int:
    if model_type == "mpt":
        attn_cfg = r.m.get("attn_config") or {}
        if isinstance(attn_cfg, Mapping) and attn_cfg.get("kv_n_heads") is not None:
            sub = _Reader(attn_cfg, file=r.file, prefix=f"{r.prefix}.attn_config",
                          family=r.family)
            return r.int_(("num_kv_heads",), sub.int_(("kv_n_heads",), minimum=1), minimum=1)
    if model_type == "falcon" and not r.bool_(("new_decoder_architecture",), False):
        mq = r.bool_(("multi_query",), True)
        return r.int_(("num_kv_heads",), 1 if mq else num_heads, minimum=1)
    return r.field_int("num_kv_heads", num_heads)


def _ffn(r: _Reader, model_type: str, hidden: int) -> int:
    if model_type == "mpt" and r.find(("ffn_hidden_size",)) is None:
        ratio = r.m.get("expansion_ratio", 4)
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio <= 0:
            raise r.error("expansion_ratio", f"expected a positive number, got {ratio!r}")
        return int(round(ratio * hidden))
    mult = r.family.ffn_mult_default
    return r.field_int("ffn_hidden_size", mult * hidden if mult else None)


def model_from_config(mapping: Mapping[str, Any], *, name: str, file: str | None = None,
                      key_prefix: str | None = None) -> ModelSpec:
    """ModelSpec from HF config.json keys (or normalized ModelSpec names); bad input -> ConfigError.

    Errors name `file` and the key as '<key_prefix or name>.<key>'.
    """
    prefix = key_prefix if key_prefix is not None else name
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"expected a mapping of config keys, got {type(mapping).__name__}",
                          file=file, key=prefix)
    model_type = _model_type(mapping, file, prefix)
    r = _Reader(mapping, file=file, prefix=prefix, family=FAMILIES[model_type])
    _check_misspellings(mapping, r)

    num_layers = r.field_int("num_layers")
    hidden = r.field_int("hidden_size")
    num_heads = r.field_int("num_heads")
    if hidden % num_heads and r.find(r.keys_for("head_dim")) is None:
        raise r.error("num_attention_heads",
                      f"hidden_size {hidden} not divisible by {num_heads} heads; give head_dim")
    ffn = _ffn(r, model_type, hidden)
    spec: dict[str, Any] = {
        "name": name,
        "model_type": model_type,
        "num_layers": num_layers,
        "hidden_size": hidden,
        "num_heads": num_heads,
        "num_kv_heads": _kv_heads(r, model_type, num_heads),
        "head_dim": r.field_int("head_dim", hidden // num_heads),
        "ffn_hidden_size": ffn,
        "vocab_size": r.field_int("vocab_size"),
        "gated_mlp": r.bool_(("gated_mlp",), r.family.gated_mlp),
        "tie_embeddings": r.bool_(r.keys_for("tie_embeddings"), r.family.tie_default),
        "max_seq_len": r.field_int("max_seq_len", r.family.max_seq_default),
        "source": str(mapping.get("source", "")),
    }
    if model_type == "mpt":
        spec["tie_embeddings"] = r.bool_(("tie_embeddings",), True)  # MPT always ties wte
    spec.update(_family_flags(r, model_type))
    spec["trains_with_dropout"] = _trains_with_dropout(r, model_type)
    spec.update(_moe_fields(r, model_type, num_layers, ffn))
    attention = str(mapping.get("attention", "mha")).lower()
    if attention not in [a.value for a in AttentionKind]:
        raise r.error("attention", f"unknown attention kind '{attention}'",
                      allowed=[a.value for a in AttentionKind])
    spec.update(_mla_fields(r, mla=r.family.moe == "deepseek" or attention == "mla"))
    try:
        return ModelSpec(**spec)
    except ConfigError as err:
        if err.file:
            raise
        key = (err.key or "").split(".")[-1]
        raise ConfigError(err.message, file=file, key=f"{prefix}.{key}",
                          allowed=err.allowed) from None
