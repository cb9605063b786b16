"""Reading Hugging Face config.json files (real snippets) into ModelSpec, and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hwmodels import catalog, flops
from hwmodels.errors import ConfigError
from hwmodels.hf_config import FAMILIES, model_from_config
from hwmodels.specs import AttentionKind

# Verbatim (minus auto_map / quantization blocks) from the official checkpoints' config.json.
LLAMA3_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
    "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 8192,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None,
    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.40.0.dev0", "use_cache": True, "vocab_size": 128256,
}
MIXTRAL_8X7B: dict[str, Any] = {
    "architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1,
    "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mixtral",
    "num_attention_heads": 32, "num_experts_per_tok": 2, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "num_local_experts": 8, "output_router_logits": False,
    "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.02,
    "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.36.0.dev0", "use_cache": True, "vocab_size": 32000,
}
DEEPSEEK_V3: dict[str, Any] = {
    "architectures": ["DeepseekV3ForCausalLM"], "attention_bias": False,
    "attention_dropout": 0.0, "aux_loss_alpha": 0.001, "bos_token_id": 0, "eos_token_id": 1,
    "ep_size": 1, "first_k_dense_replace": 3, "hidden_act": "silu", "hidden_size": 7168,
    "initializer_range": 0.02, "intermediate_size": 18432, "kv_lora_rank": 512,
    "max_position_embeddings": 163840, "model_type": "deepseek_v3",
    "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_group": 8, "n_routed_experts": 256,
    "n_shared_experts": 1, "norm_topk_prob": True, "num_attention_heads": 128,
    "num_experts_per_tok": 8, "num_hidden_layers": 61, "num_key_value_heads": 128,
    "num_nextn_predict_layers": 1, "q_lora_rank": 1536, "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64, "rms_norm_eps": 1e-06, "rope_theta": 10000,
    "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "seq_aux": True,
    "tie_word_embeddings": False, "topk_group": 4, "topk_method": "noaux_tc",
    "torch_dtype": "bfloat16", "transformers_version": "4.33.1", "use_cache": True,
    "v_head_dim": 128, "vocab_size": 129280,
}
QWEN2_57B: dict[str, Any] = {
    "architectures": ["Qwen2MoeForCausalLM"], "attention_dropout": 0.0,
    "bos_token_id": 151643, "decoder_sparse_step": 1, "eos_token_id": 151643,
    "hidden_act": "silu", "hidden_size": 3584, "initializer_range": 0.02,
    "intermediate_size": 18944, "max_position_embeddings": 131072, "max_window_layers": 28,
    "model_type": "qwen2_moe", "moe_intermediate_size": 2560, "norm_topk_prob": False,
    "num_attention_heads": 28, "num_experts": 64, "num_experts_per_tok": 8,
    "num_hidden_layers": 28, "num_key_value_heads": 4, "output_router_logits": False,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001,
    "shared_expert_intermediate_size": 20480, "sliding_window": 131072,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.40.1",
    "use_cache": True, "use_sliding_window": False, "vocab_size": 151936,
}
GPT2_SMALL: dict[str, Any] = {
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
    "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768,
    "n_head": 12, "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1,
    "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
    "summary_type": "cls_index", "summary_use_proj": True, "vocab_size": 50257,
}
MPT_7B: dict[str, Any] = {
    "architectures": ["MPTForCausalLM"],
    "attn_config": {"alibi": True, "alibi_bias_max": 8, "attn_impl": "torch", "attn_pdrop": 0,
                    "attn_type": "multihead_attention", "attn_uses_sequence_id": False,
                    "clip_qkv": None, "prefix_lm": False, "qk_ln": False,
                    "softmax_scale": None},
    "d_model": 4096, "emb_pdrop": 0, "embedding_fraction": 1.0, "expansion_ratio": 4,
    "init_device": "cpu", "learned_pos_emb": True, "logit_scale": None, "max_seq_len": 2048,
    "model_type": "mpt", "n_heads": 32, "n_layers": 32, "no_bias": True,
    "norm_type": "low_precision_layernorm", "resid_pdrop": 0,
    "tokenizer_name": "EleutherAI/gpt-neox-20b", "torch_dtype": "bfloat16",
    "transformers_version": "4.28.1", "use_cache": False, "verbose": 0, "vocab_size": 50432,
}
FALCON_7B: dict[str, Any] = {
    "alibi": False, "apply_residual_connection_post_layernorm": False,
    "architectures": ["FalconForCausalLM"], "attention_dropout": 0.0, "bias": False,
    "bos_token_id": 11, "eos_token_id": 11, "hidden_dropout": 0.0, "hidden_size": 4544,
    "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "falcon",
    "multi_query": True, "new_decoder_architecture": False, "num_attention_heads": 71,
    "num_hidden_layers": 32, "parallel_attn": True, "torch_dtype": "bfloat16",
    "transformers_version": "4.27.4", "use_cache": True, "vocab_size": 65024,
}
OPT_125M: dict[str, Any] = {
    "_name_or_path": "facebook/opt-125m", "activation_dropout": 0.0,
    "activation_function": "relu", "architectures": ["OPTForCausalLM"],
    "attention_dropout": 0.0, "bos_token_id": 2, "do_layer_norm_before": True, "dropout": 0.1,
    "eos_token_id": 2, "ffn_dim": 3072, "hidden_size": 768, "init_std": 0.02, "layerdrop": 0.0,
    "max_position_embeddings": 2048, "model_type": "opt", "num_attention_heads": 12,
    "num_hidden_layers": 12, "pad_token_id": 1, "prefix": "</s>", "torch_dtype": "float16",
    "transformers_version": "4.21.0.dev0", "use_cache": True, "vocab_size": 50272,
    "word_embed_proj_dim": 768,
}


def _write(tmp_path: Path, cfg: dict[str, Any], name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(cfg))
    return path


def test_llama3_8b_config_json(tmp_path: Path) -> None:
    m = catalog.load_model(_write(tmp_path, LLAMA3_8B))
    assert (m.num_layers, m.hidden_size, m.num_heads, m.num_kv_heads, m.head_dim) == \
        (32, 4096, 32, 8, 128)
    assert m.gated_mlp and not m.tie_embeddings and not m.is_moe
    assert m.max_seq_len == 8192
    assert flops.param_count(m) == 8_030_261_248  # HF safetensors total
    ours = catalog.load_model("llama3-8b")
    assert flops.param_count(ours) == flops.param_count(m)


def test_mixtral_config_json(tmp_path: Path) -> None:
    m = catalog.load_model(str(_write(tmp_path, MIXTRAL_8X7B)))
    assert (m.num_experts, m.experts_per_token, m.moe_ffn_hidden_size) == (8, 2, 14336)
    assert m.num_moe_layers == 32 and m.num_shared_experts == 0
    assert flops.param_count(m) / 1e9 == pytest.approx(46.7, rel=0.005)
    assert flops.active_param_count(m) / 1e9 == pytest.approx(12.9, rel=0.005)


def test_deepseek_v3_config_reads_mla_and_moe() -> None:
    m = model_from_config(DEEPSEEK_V3, name="dsv3", file="config.json")
    assert m.attention is AttentionKind.MLA
    assert (m.kv_lora_rank, m.q_lora_rank, m.qk_rope_head_dim, m.v_head_dim) == (512, 1536, 64, 128)
    assert m.head_dim == 192 and m.qk_nope_head_dim == 128 and m.value_head_dim == 128
    assert (m.num_experts, m.experts_per_token, m.num_shared_experts) == (256, 8, 1)
    assert m.first_dense_layers == 3 and m.ffn_hidden_size == 18432
    assert flops.param_count(m) / 1e9 == pytest.approx(671, rel=0.005)
    # HF's newer DeepseekV3Config writes head_dim = qk_rope_head_dim; it must not be read as
    # the q/k width.
    m2 = model_from_config({**DEEPSEEK_V3, "head_dim": 64}, name="dsv3")
    assert m2.head_dim == 192


def test_deepseek_v2_lite_null_q_lora() -> None:
    m = catalog.load_model("deepseek-v2-lite")
    assert m.q_lora_rank == 0
    assert flops.param_count(m) / 1e9 == pytest.approx(15.7, rel=0.01)


def test_qwen2_moe_shared_expert() -> None:
    m = model_from_config(QWEN2_57B, name="q")
    assert m.qkv_bias and m.num_shared_experts == 1
    assert m.shared_ffn == 20480 and m.moe_ffn_hidden_size == 2560
    assert flops.param_count(m) / 1e9 == pytest.approx(57.4, rel=0.005)
    assert flops.active_param_count(m) / 1e9 == pytest.approx(14.2, rel=0.01)


def test_qwen_moe_sparse_step_and_dense_layers() -> None:
    m = model_from_config({**QWEN2_57B, "decoder_sparse_step": 2, "mlp_only_layers": [1]},
                          name="q")
    # MoE layers: (i + 1) % 2 == 0 -> 14 of 28; layer 1 is one of them and forced dense.
    assert m.num_moe_layers == 13 and m.num_dense_layers == 15


def test_gpt2_small_exact() -> None:
    m = model_from_config(GPT2_SMALL, name="gpt2")
    assert not m.gated_mlp and m.tie_embeddings and m.learned_pos_emb and m.linear_bias
    assert (m.ffn_hidden_size, m.max_seq_len) == (3072, 1024)
    assert flops.param_count(m) == 124_439_808  # HF gpt2


def test_mpt_7b_exact() -> None:
    m = model_from_config(MPT_7B, name="mpt-7b")
    assert not m.learned_pos_emb  # alibi replaces the position table
    assert not m.linear_bias and not m.norm_bias and m.tie_embeddings and not m.gated_mlp
    assert flops.param_count(m) == 6_649_286_656  # HF mosaicml/mpt-7b


def test_mpt_grouped_query_from_attn_config() -> None:
    cfg = {**MPT_7B, "attn_config": {**MPT_7B["attn_config"], "kv_n_heads": 8,
                                     "attn_type": "grouped_query_attention"}}
    assert model_from_config(cfg, name="m").num_kv_heads == 8


def test_falcon_7b_multi_query() -> None:
    m = model_from_config(FALCON_7B, name="falcon-7b")
    assert (m.num_kv_heads, m.head_dim, m.ffn_hidden_size) == (1, 64, 4 * 4544)
    assert not m.linear_bias and m.tie_embeddings
    assert flops.param_count(m) / 1e9 == pytest.approx(6.92, rel=0.005)


def test_opt_125m() -> None:
    m = model_from_config(OPT_125M, name="opt-125m")
    assert m.ffn_hidden_size == 3072 and m.learned_pos_emb and not m.gated_mlp
    # HF count 125,239,296 includes 2 offset position rows we leave out.
    assert flops.param_count(m) == pytest.approx(125_239_296, abs=2 * 768)


def test_gpt_neox_and_bloom_families() -> None:
    neox = catalog.load_model("gpt-neox-20b")
    assert not neox.tie_embeddings and neox.linear_bias
    bloom = model_from_config({"model_type": "bloom", "n_layer": 24, "hidden_size": 1024,
                               "n_head": 16, "vocab_size": 250880}, name="bloom-560m")
    assert flops.param_count(bloom) == pytest.approx(559_214_592, abs=2048)  # HF bloom-560m


def test_normalized_keys_without_model_type() -> None:
    m = model_from_config({"num_layers": 4, "hidden_size": 256, "num_heads": 4,
                           "num_kv_heads": 2, "ffn_hidden_size": 512, "vocab_size": 1000,
                           "num_experts": 4, "experts_per_token": 2,
                           "moe_ffn_hidden_size": 128, "first_dense_layers": 1}, name="tiny")
    assert m.model_type == "llama" and m.gated_mlp and m.head_dim == 64
    assert m.num_moe_layers == 3 and m.moe_ffn_hidden_size == 128


def test_normalized_key_wins_over_hf_key() -> None:
    m = model_from_config({**LLAMA3_8B, "num_layers": 2}, name="x")
    assert m.num_layers == 2


def test_every_family_has_defaults_for_a_minimal_config() -> None:
    for model_type in FAMILIES:
        cfg: dict[str, Any] = {"model_type": model_type, "num_hidden_layers": 2,
                               "hidden_size": 256, "num_attention_heads": 4,
                               "intermediate_size": 1024, "vocab_size": 1000}
        if FAMILIES[model_type].moe:
            cfg.update(num_experts=4, num_local_experts=4, n_routed_experts=4,
                       num_experts_per_tok=2, moe_intermediate_size=128)
        if model_type.startswith("deepseek"):
            cfg.update(kv_lora_rank=64, qk_rope_head_dim=16, qk_nope_head_dim=32, v_head_dim=32)
        m = model_from_config(cfg, name=model_type)
        assert flops.param_count(m) > 0, model_type


# ---------------------------------------------------------------- bad input


def _err(cfg: dict[str, Any], file: str = "cfg/config.json") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        model_from_config(cfg, name="m", file=file)
    return info.value


def test_missing_required_key_names_file_and_key() -> None:
    cfg = {k: v for k, v in LLAMA3_8B.items() if k != "num_hidden_layers"}
    err = _err(cfg)
    assert err.file == "cfg/config.json" and err.key == "m.num_hidden_layers"
    assert "missing required key" in str(err) and "cfg/config.json" in str(err)


def test_missing_moe_key_is_an_error_not_a_default() -> None:
    cfg = {k: v for k, v in QWEN2_57B.items() if k != "moe_intermediate_size"}
    assert _err(cfg).key == "m.moe_intermediate_size"


def test_wrong_types() -> None:
    assert "expected an integer" in str(_err({**LLAMA3_8B, "hidden_size": "4096"}))
    assert _err({**LLAMA3_8B, "hidden_size": "4096"}).key == "m.hidden_size"
    err = _err({**LLAMA3_8B, "tie_word_embeddings": "no"})
    assert err.key == "m.tie_word_embeddings" and "true, false" in str(err)
    assert _err({**LLAMA3_8B, "num_hidden_layers": 0}).key == "m.num_hidden_layers"
    assert _err({**QWEN2_57B, "mlp_only_layers": "none"}).key == "m.mlp_only_layers"


def test_unknown_model_type_lists_allowed() -> None:
    err = _err({**LLAMA3_8B, "model_type": "llama9"})
    assert err.key == "m.model_type" and "unknown model_type 'llama9'" in str(err)
    assert "llama" in err.allowed and "deepseek_v3" in err.allowed and "mpt" in err.allowed
    assert _err({"hidden_size": 8}).key == "m.model_type"


def test_misspelt_key_is_rejected_with_suggestion() -> None:
    cfg = {**LLAMA3_8B, "num_key_value_head": 8}
    del cfg["num_key_value_heads"]
    err = _err(cfg)
    assert err.key == "m.num_key_value_head"
    assert "did you mean 'num_key_value_heads'" in str(err)


def test_inconsistent_dims_name_the_key() -> None:
    err = _err({**LLAMA3_8B, "num_key_value_heads": 5})
    assert err.file == "cfg/config.json" and "num_key_value_heads" in str(err)
    err = _err({**MIXTRAL_8X7B, "num_experts_per_tok": 9})
    assert "num_experts_per_tok" in str(err)


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        model_from_config([1, 2], name="m", file="x.json")  # type: ignore[arg-type]


def test_malformed_json_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama",,}')
    with pytest.raises(ConfigError, match="malformed JSON") as info:
        catalog.load_model(path)
    assert str(path) in str(info.value)


_GPT2 = {"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 100}


@pytest.mark.parametrize(("extra", "expected"), [
    ({}, True),  # no dropout keys: the family rule (plain-MLP GPT-style trains with dropout)
    ({"resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1}, True),
    ({"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}, False),
    ({"resid_pdrop": 0.0, "attn_pdrop": 0.1}, True),
    ({"trains_with_dropout": False, "resid_pdrop": 0.1}, False),  # the explicit key wins
])
def test_dropout_follows_the_configs_probabilities(extra: dict, expected: bool) -> None:
    model = model_from_config({**_GPT2, **extra}, name="g")
    assert model.uses_dropout() is expected
    assert model.uses_dropout(not expected) is (not expected)  # a caller's override wins


def test_mpt_trains_without_dropout_by_default() -> None:
    """llm-foundry's MPTConfig defaults resid_pdrop, emb_pdrop and attn_pdrop to 0.0."""
    mpt = {"model_type": "mpt", "n_layers": 2, "d_model": 64, "n_heads": 4, "vocab_size": 100}
    assert model_from_config(mpt, name="m").uses_dropout() is False
    with_drop = {**mpt, "attn_config": {"attn_pdrop": 0.1}}
    assert model_from_config(with_drop, name="m").uses_dropout() is True
    assert catalog.load_model("mpt-7b").uses_dropout() is False
    llama = catalog.load_model("llama3-8b")
    assert llama.uses_dropout() is False and catalog.load_model("gpt3-175b").uses_dropout()


@pytest.mark.parametrize("bad", [{"resid_pdrop": "x"}, {"attn_pdrop": 1.5},
                                 {"resid_pdrop": True}, {"trains_with_dropout": "yes"}])
def test_a_bad_dropout_value_names_its_key(bad: dict) -> None:
    with pytest.raises(ConfigError) as err:
        model_from_config({**_GPT2, **bad}, name="g")
    assert next(iter(bad)) in str(err.value)
