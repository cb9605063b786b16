"""Builds notebooks/serving_azure_replay.ipynb (run: python notebooks/make_serving_azure_notebook.py)."""

from pathlib import Path

import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell('# Replaying the Azure LLM conversation trace on Llama-2-70B (TP8, H100)\n\nThe bundled sample of the Azure LLM inference 2023 conversation trace (first 2,000 requests,\nCC-BY-4.0; `traces/data/README.md`) replayed on one 8x H100-SXM replica with vLLM-style\ncontinuous batching, then at 1x to 6x its rate to find the latency knee, and vLLM vs\nSarathi-style chunked prefill.'),
    nbf.v4.new_code_cell("import yaml, pandas as pd\nfrom importlib.resources import files\nfrom simulator.serving import load_serving_scenario, load_workload, simulate_serving, apply_overrides\nfrom traces.stats import trace_stats\nmapping = yaml.safe_load(files('simulator').joinpath('scenarios/llama2-70b-h100-azure.yaml').read_text())\nscenario = load_serving_scenario(mapping)\nrequests = load_workload(scenario)\n{k: v for k, v in trace_stats(requests).items() if k in ('requests', 'rate_rps', 'interarrival_cv')}"),
    nbf.v4.new_code_cell('result = simulate_serving(scenario, requests)\nresult.summary()'),
    nbf.v4.new_code_cell("rows = []\nfor scale in (1, 2, 3, 4, 5, 6):\n    for sched in ('vllm', 'sarathi'):\n        sc = load_serving_scenario(apply_overrides(mapping, [f'workload.rate_scale={scale}', f'serving.scheduler={sched}']))\n        s = simulate_serving(sc, load_workload(sc)).summary()\n        rows.append({'rate_x': scale, 'scheduler': sched, 'ttft_p99_s': s['ttft_s']['p99'],\n                     'tpot_p99_s': s['tpot_s']['p99'], 'slo_attainment': s['slo_attainment'],\n                     'goodput_rps': s['goodput_rps']})\nknee = pd.DataFrame(rows)\nknee"),
    nbf.v4.new_code_cell("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nfig, axes = plt.subplots(1, 2, figsize=(11, 3.5))\nfor sched, grp in knee.groupby('scheduler'):\n    axes[0].plot(grp.rate_x * 4.7, grp.ttft_p99_s, marker='o', label=sched)\n    axes[1].plot(grp.rate_x * 4.7, grp.tpot_p99_s, marker='o', label=sched)\naxes[0].set_yscale('log'); axes[0].set_ylabel('TTFT p99 (s)'); axes[1].set_ylabel('TPOT p99 (s)')\nfor ax in axes: ax.set_xlabel('offered load (req/s)'); ax.legend(); ax.grid(alpha=0.3)\nfig.savefig('latency_vs_load.png', dpi=90, bbox_inches='tight')"),
    nbf.v4.new_code_cell("from simulator.serving.plots import plot_latency_cdfs, plot_timeseries\nplot_latency_cdfs(result, 'azure_cdfs.png'), plot_timeseries(result, 'azure_timeseries.png')"),
]
nb = nbf.v4.new_notebook(cells=cells, metadata={"kernelspec": {
    "name": "python3", "display_name": "Python 3", "language": "python"}})
nbf.write(nb, Path(__file__).with_name("serving_azure_replay.ipynb"))
