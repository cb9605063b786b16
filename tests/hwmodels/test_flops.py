"""Parameter and FLOP counts against published figures and Megatron's closed forms."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import catalog, flops
from hwmodels.errors import ConfigError
from hwmodels.parallel import Recompute
from hwmodels.specs import ModelSpec

_REPO = Path(__file__).resolve().parents[2]
VALIDATION_CSV = next(
    (p for p in (_REPO / "shared", _REPO.parent / "shared")
     if (p / "validation" / "training_published.csv").exists()),
    _REPO / "shared") / "validation" / "training_published.csv"


def _rows(source: str) -> list[dict[str, str]]:
    if not VALIDATION_CSV.exists():
        pytest.skip(f"requires ../shared: validation/training_published.csv is missing "
                    f"({VALIDATION_CSV})")
    with VALIDATION_CSV.open() as fh:
        return [r for r in csv.DictReader(fh) if r["source"] == source]


# (catalog name, published total B, published active B or None, relative tolerance)
PUBLISHED = [
    ("llama3-70b", 70.6, None, 0.01),  # Meta model card
    ("llama2-7b", 6.74, None, 0.01),  # Touvron et al. 2023
    ("llama2-70b", 69.0, None, 0.01),
    ("llama3-8b", 8.03, None, 0.01),
    ("llama3.1-405b", 405.9, None, 0.01),  # Llama 3 Herd, arXiv 2407.21783
    ("gpt3-175b", 174.6, None, 0.01),  # Megatron-LM SC'21 Table 2
    ("mixtral-8x7b", 46.7, 12.9, 0.01),  # arXiv 2401.04088
    ("mixtral-8x22b", 141.0, 39.0, 0.02),  # mistral.ai, 2024-04-17
    ("deepseek-v3", 671.0, 37.0, 0.03),  # arXiv 2412.19437
    ("deepseek-v2", 236.0, 21.0, 0.03),  # arXiv 2405.04434
    ("qwen2-57b-a14b", 57.4, 14.2, 0.02),  # Qwen2 report Table 1
    ("qwen3-30b-a3b", 30.5, 3.3, 0.03),  # Qwen3 report Table 2
    ("qwen3-235b-a22b", 235.0, 22.0, 0.03),
    ("bloom-176b", 176.2, None, 0.01),  # arXiv 2211.05100
    ("gpt-neox-20b", 20.55, None, 0.01),  # arXiv 2204.06745
    ("mistral-7b", 7.24, None, 0.01),
]


@pytest.mark.parametrize(("name", "total_b", "active_b", "tol"), PUBLISHED)
def test_param_counts_match_published(name: str, total_b: float, active_b: float | None,
                                      tol: float) -> None:
    m = catalog.load_model(name)
    assert flops.param_count(m) / 1e9 == pytest.approx(total_b, rel=tol)
    if active_b is not None:
        assert flops.active_param_count(m) / 1e9 == pytest.approx(active_b, rel=tol)
    else:
        assert flops.active_param_count(m) == flops.param_count(m)


@pytest.mark.parametrize(("name", "exact"), [
    ("llama2-7b", 6_738_415_616),  # HF safetensors totals of the official checkpoints
    ("llama3-8b", 8_030_261_248),
    ("llama3-70b", 70_553_706_496),
    ("mixtral-8x7b", 46_702_792_704),
])
def test_param_counts_exact_for_hf_checkpoints(name: str, exact: int) -> None:
    assert flops.param_count(catalog.load_model(name)) == exact


SC21_NAMES = {"GPT-1.7B": "gpt-1.7b", "GPT-3.6B": "gpt-3.6b", "GPT-7.5B": "gpt-7.5b",
              "GPT-18.4B": "gpt-18.4b", "GPT-39.1B": "gpt-39.1b", "GPT-76.1B": "gpt-76.1b",
              "GPT-145.6B": "gpt-145.6b", "GPT-310.1B": "gpt-310.1b",
              "GPT-529.6B": "gpt-529.6b", "GPT-1008.0B": "gpt-1t"}


def _check_dims(m: ModelSpec, row: dict[str, str]) -> None:
    assert (m.num_layers, m.hidden_size, m.num_heads, m.ffn_hidden_size, m.vocab_size) == (
        int(row["layers"]), int(row["hidden"]), int(row["heads"]), int(row["ffn"]),
        int(row["vocab"]))


def _published_tolerance_b(text: str) -> float:
    """2%, or half a unit of the last printed digit (SC'21 prints 1.7 for 1.65B)."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return max(0.02 * float(text), 0.5 * 10.0**-decimals)


def test_sc21_table1_params_within_2pct() -> None:
    rows = _rows("SC21-T1")
    assert len(rows) == len(SC21_NAMES)
    for row in rows:
        m = catalog.load_model(SC21_NAMES[row["model"]])
        _check_dims(m, row)
        ours_b = flops.param_count(m) / 1e9
        assert abs(ours_b - float(row["params_B"])) <= _published_tolerance_b(row["params_B"]), \
            (row["model"], ours_b)


def test_mpt_params_within_2pct_of_llm_foundry() -> None:
    rows = _rows("FOUNDRY-H100")
    assert rows
    for row in rows:
        name = row["model"].lower()
        m = catalog.load_model(name)
        if int(row["seq_len"]) != m.max_seq_len:  # the 8k-context run has a longer pos table
            m = catalog.load_model({**catalog.raw_entry("models", name),
                                    "max_seq_len": int(row["seq_len"]), "name": name})
        _check_dims(m, row)
        assert flops.param_count(m) / 1e9 == pytest.approx(float(row["params_B"]), rel=0.02), \
            row["model"]


def _megatron_model_flops(m: ModelSpec, batch: int, seq: int) -> float:
    b, s, h, L, V = batch, seq, m.hidden_size, m.num_layers, m.vocab_size
    return 72 * b * L * s * h**2 * (1 + s / (6 * h) + V / (12 * h * L))


GPT_NAMES = sorted(SC21_NAMES.values()) + ["gpt3-175b", "gpt-22b", "mt-nlg-530b"]


@pytest.mark.parametrize("name", GPT_NAMES)
def test_megatron_formula_identities(name: str) -> None:
    m = catalog.load_model(name)
    for batch, seq in ((1, 2048), (1536, 2048), (4, 512)):
        assert flops.model_flops_per_iteration(m, batch=batch, seq_len=seq) == pytest.approx(
            _megatron_model_flops(m, batch, seq), rel=1e-12)
    # SC'21 appendix: P = 12 l h^2 (1 + 13/(12h) + (V+s)/(12lh)), plus the final LayerNorm.
    h, L, V, s = m.hidden_size, m.num_layers, m.vocab_size, m.max_seq_len
    megatron_p = 12 * L * h**2 * (1 + 13 / (12 * h) + (V + s) / (12 * L * h))
    assert flops.param_count(m) == pytest.approx(megatron_p + 2 * h, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(layers=st.integers(1, 128), heads=st.integers(1, 64), head_dim=st.sampled_from([64, 128]),
       vocab=st.integers(1000, 300_000), seq=st.integers(1, 32_768), batch=st.integers(1, 4096))
def test_megatron_identity_any_gpt_shape(layers: int, heads: int, head_dim: int, vocab: int,
                                         seq: int, batch: int) -> None:
    h = heads * head_dim
    m = ModelSpec(name="g", model_type="gpt2", num_layers=layers, hidden_size=h,
                  num_heads=heads, num_kv_heads=heads, head_dim=head_dim, ffn_hidden_size=4 * h,
                  vocab_size=vocab, gated_mlp=False, tie_embeddings=True)
    assert flops.model_flops_per_iteration(m, batch=batch, seq_len=seq) == pytest.approx(
        _megatron_model_flops(m, batch, seq), rel=1e-12)


def test_recompute_hardware_flops_match_korthikanti_forms() -> None:
    m = catalog.load_model("gpt3-175b")
    b, s, h, L, V = 64, 2048, m.hidden_size, m.num_layers, m.vocab_size
    none = flops.hardware_flops_per_iteration(m, batch=b, seq_len=s, recompute=Recompute.NONE)
    full = flops.hardware_flops_per_iteration(m, batch=b, seq_len=s, recompute="full")
    sel = flops.hardware_flops_per_iteration(m, batch=b, seq_len=s, recompute="selective")
    assert none == flops.model_flops_per_iteration(m, batch=b, seq_len=s)
    # Full recompute: every layer's forward runs twice, logits once (Korthikanti Eq. for HFU).
    assert full == pytest.approx(96 * b * s * L * h**2 * (1 + s / (6 * h) + V / (16 * L * h)),
                                 rel=1e-12)
    # Selective: only QK^T and AV (4 B s^2 h per layer) run again.
    assert sel == pytest.approx(none + 4 * b * s**2 * h * L, rel=1e-12)
    assert none < sel < full


def test_training_flops_are_three_forward_passes_per_token() -> None:
    for name in ("llama3-70b", "mixtral-8x7b", "deepseek-v3", "qwen2-57b-a14b"):
        m = catalog.load_model(name)
        s = 4096
        per_token = flops.forward_flops_per_token(m, context_len=s)  # full s x s square
        assert flops.model_flops_per_iteration(m, batch=2, seq_len=s) == pytest.approx(
            3 * 2 * s * per_token, rel=1e-12), name


@pytest.mark.parametrize("name", ["llama3-8b", "mixtral-8x7b", "qwen3-30b-a3b"])
def test_forward_flops_are_twice_the_active_matmul_weights(name: str) -> None:
    m = catalog.load_model(name)
    h, L = m.hidden_size, m.num_layers
    norms = (2 * L + 1) * h + (2 * L * m.head_dim if m.qk_norm else 0)
    matmul_weights = flops.active_param_count(m) - m.vocab_size * h - norms  # input table is a lookup
    assert flops.forward_flops_per_token(m, context_len=0) == 2 * matmul_weights
    without_logits = flops.forward_flops_per_token(m, context_len=0, logits=False)
    assert without_logits == 2 * (matmul_weights - m.vocab_size * h)
    # Each context token adds QK^T + AV: 2 * heads * (d_qk + d_v) per layer.
    slope = flops.forward_flops_per_token(m, context_len=1001) - \
        flops.forward_flops_per_token(m, context_len=1)
    assert slope == 1000 * L * 2 * m.num_heads * 2 * m.head_dim


def test_deepseek_v3_mla_layer_weights_exact() -> None:
    m = catalog.load_model("deepseek-v3")
    h = 7168
    attn = (h * 1536 + 1536 + 1536 * 128 * 192  # q_a, q_a_norm, q_b
            + h * (512 + 64) + 512 + 512 * 128 * (128 + 128)  # kv_a (+rope), norm, kv_b
            + 128 * 128 * h)  # o_proj
    assert flops.layer_param_count(m, moe=False) == attn + 3 * h * 18432 + 2 * h
    moe = attn + 2 * h + h * 256 + (256 + 1) * 3 * h * 2048
    assert flops.layer_param_count(m, moe=True) == moe
    active = attn + 2 * h + h * 256 + (8 + 1) * 3 * h * 2048
    assert flops.active_layer_param_count(m, moe=True) == active
    assert m.num_dense_layers == 3 and m.num_moe_layers == 58


def test_embedding_and_head_counts() -> None:
    llama = catalog.load_model("llama3-8b")
    assert flops.lm_head_param_count(llama) == 128256 * 4096
    assert flops.embedding_param_count(llama) == 2 * 128256 * 4096
    gpt = catalog.load_model("gpt3-175b")  # tied, learned positions
    assert flops.lm_head_param_count(gpt) == 0
    assert flops.embedding_param_count(gpt) == (51200 + 2048) * 12288


def test_bad_arguments_raise_config_error() -> None:
    m = catalog.load_model("llama3-8b")
    with pytest.raises(ConfigError, match="batch"):
        flops.model_flops_per_iteration(m, batch=0, seq_len=2048)
    with pytest.raises(ConfigError, match="seq_len"):
        flops.model_flops_per_iteration(m, batch=1, seq_len=2048.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="allowed: none, selective, full"):
        flops.hardware_flops_per_iteration(m, batch=1, seq_len=8, recompute="partial")
    with pytest.raises(ConfigError, match="no MoE layers"):
        flops.layer_param_count(m, moe=True)
    with pytest.raises(ConfigError, match="context_len"):
        flops.forward_flops_per_token(m, context_len=-1)
