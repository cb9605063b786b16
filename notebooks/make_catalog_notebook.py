"""Builds notebooks/catalog_and_estimate.ipynb (run: python notebooks/make_catalog_notebook.py)."""

from pathlib import Path

import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell(
        "# The catalog and a first estimate\n\n"
        "fleetsim's `hwmodels` package holds devices, links and models as YAML data and pure "
        "cost functions over them. This notebook lists what the catalog knows, checks a few "
        "parameter counts against published figures, and estimates one serving step."),
    nbf.v4.new_code_cell(
        "import pandas as pd\n"
        "from hwmodels import catalog, flops\n"
        "from hwmodels.units import GiB\n"
        "devices = pd.DataFrame([{\n"
        "    'device': n, 'bf16_tflops': catalog.load_device(n).peak('bf16') / 1e12,\n"
        "    'hbm_gib': catalog.load_device(n).memory_bytes / GiB,\n"
        "    'hbm_tbps': catalog.load_device(n).memory_bw_Bps / 1e12,\n"
        "    'usd_per_h': catalog.load_device(n).price_usd_per_hour,\n"
        "} for n in catalog.list_devices()])\n"
        "devices.sort_values('bf16_tflops')"),
    nbf.v4.new_markdown_cell("Parameter counts from the model dimensions (no weights needed):"),
    nbf.v4.new_code_cell(
        "published_b = {'llama3-70b': 70.6, 'llama2-7b': 6.74, 'gpt3-175b': 174.6,\n"
        "               'mixtral-8x7b': 46.7, 'llama3.1-405b': 405.9}\n"
        "rows = []\n"
        "for name, pub in published_b.items():\n"
        "    m = catalog.load_model(name)\n"
        "    ours = flops.param_count(m) / 1e9\n"
        "    rows.append({'model': name, 'ours_B': round(ours, 2), 'published_B': pub,\n"
        "                 'error_pct': round(100 * (ours - pub) / pub, 2)})\n"
        "table = pd.DataFrame(rows)\n"
        "assert table.error_pct.abs().max() < 1.0\n"
        "table"),
    nbf.v4.new_markdown_cell(
        "## One serving step\n\nLlama-2-70B on 8 H100s (TP=8): a step that prefills two "
        "512-token prompts while 32 sequences decode at context 1024. Decode steps are "
        "memory-bound (every weight is read once per step), prefill steps compute-bound."),
    nbf.v4.new_code_cell(
        "from hwmodels.step import estimate_step\n"
        "model, device = catalog.load_model('llama2-70b'), catalog.load_device('h100-sxm')\n"
        "est = estimate_step(model, device, tp=8, prefill_lens=[512, 512],\n"
        "                    decode_context_lens=[1024] * 32)\n"
        "print(f'step time {est.time_s * 1e3:.2f} ms')\n"
        "pd.Series(est.breakdown)"),
    nbf.v4.new_code_cell(
        "import matplotlib\nimport matplotlib.pyplot as plt\n\nmatplotlib.use('Agg')\n"
        "batches = [1, 2, 4, 8, 16, 32, 64, 128, 256]\n"
        "ms = [estimate_step(model, device, tp=8, decode_context_lens=[1024] * b).time_s * 1e3\n"
        "      for b in batches]\n"
        "fig, ax = plt.subplots(figsize=(5, 3))\n"
        "ax.plot(batches, ms, marker='o')\n"
        "ax.set_xscale('log', base=2)\n"
        "ax.set_xlabel('decode batch')\n"
        "ax.set_ylabel('step time (ms)')\n"
        "ax.set_title('Llama-2-70B TP8 H100: decode step vs batch')\n"
        "assert ms[0] < ms[-1] and ms[-1] / ms[0] < 10  # memory-bound: batching is cheap"),
]
nb = nbf.v4.new_notebook(cells=cells, metadata={"kernelspec": {
    "name": "python3", "display_name": "Python 3", "language": "python"}})
nbf.write(nb, Path(__file__).with_name("catalog_and_estimate.ipynb"))
