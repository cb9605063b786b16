"""Builds notebooks/longrun_failures.ipynb (run: python notebooks/make_longrun_notebook.py)."""

from pathlib import Path

import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell(
        "# Training for weeks: failures, checkpoints and ETTR\n\n"
        "`simulator.longrun` simulates a training job over days at checkpoint granularity: "
        "per-component failure processes (the default built from Llama 3's Table 5), restarts, "
        "rollbacks to the last checkpoint, spares, elastic continuation and stragglers. This "
        "notebook reproduces the Llama 3 405B run's interruption count, compares the simulator "
        "with the closed-form ETTR of Kokolis et al. (HPCA'25), and picks a checkpoint interval."),
    nbf.v4.new_code_cell(
        "import pandas as pd\n"
        "from simulator.longrun import JobShape, parse_run, simulate_many, kokolis_ettr, exact_ettr\n"
        "from simulator.longrun.failures import llama3_components, HOUR_S, DAY_S\n"
        "rows = [{'cause': c.cause, 'scope': c.scope.value, 'replace_node': c.replace,\n"
        "         'per_unit_per_day': c.rate_per_unit_s * DAY_S} for c in llama3_components()]\n"
        "pd.DataFrame(rows).sort_values('per_unit_per_day', ascending=False).head(8)"),
    nbf.v4.new_markdown_cell(
        "## The Llama 3 405B run: 16,384 H100s for 54 days\n\n"
        "TP8 x PP16 x DP128, 16M-token steps of ~6 s, async checkpoints every 10 minutes, "
        "detection 60 s + restart 5 min, 64 hot-spare nodes. Published: 419 unexpected "
        "interruptions and more than 90% effective training time."),
    nbf.v4.new_code_cell(
        "job = JobShape(num_gpus=16384, gpus_per_node=8, dp=128, gpus_per_replica=128,\n"
        "               tokens_per_iteration=16 * 2**20, state_bytes=405e9 * 18)\n"
        "cfg = parse_run({'duration': '54d', 'spares': 64, 'detection_s': '60s', 'restart_s': '5m',\n"
        "                 'checkpoint': {'interval_s': '10m', 'mode': 'async'}}, job=job)\n"
        "summary = simulate_many(cfg, job, lambda dp: 6.0 * 128 / dp, seeds=8)\n"
        "assert abs(summary.interruptions_mean - 419) / 419 < 0.1 and summary.ettr_p5 > 0.9\n"
        "print(f'interruptions {summary.interruptions_mean:.0f} (published 419), '\n"
        "      f'ETTR {summary.ettr_mean:.3f} [{summary.ettr_p5:.3f}, {summary.ettr_p95:.3f}]')\n"
        "pd.Series(summary.to_dict()['time_lost_s']) / 3600  # hours lost per cause"),
    nbf.v4.new_code_cell(
        "%matplotlib inline\n"
        "from simulator.longrun.plot import plot_progress\n"
        "from IPython.display import Image\n"
        "Image(filename=str(plot_progress(summary.runs[:3], 'llama3_progress.png')))"),
    nbf.v4.new_markdown_cell(
        "## Against the closed form\n\n"
        "Under Kokolis et al.'s assumptions (exponential failures, fixed restart R, sync stall "
        "delta, interval tau, job MTTF M): ETTR ~= tau/(tau+delta) * (1 - (R + (tau+delta)/2)/M). "
        "The exact renewal value is tau / (M e^(R/M) (e^((tau+delta)/M) - 1))."),
    nbf.v4.new_code_cell(
        "rows = []\n"
        "for nodes in (256, 1024, 2048):\n"
        "    j = JobShape(num_gpus=nodes * 8, gpus_per_node=8, dp=nodes, gpus_per_replica=8,\n"
        "                 tokens_per_iteration=1e6, state_bytes=1e12)\n"
        "    for tau in (600, 1800):\n"
        "        c = parse_run({'duration': '60d', 'spares': nodes, 'detection_s': 0, 'restart_s': 600,\n"
        "                       'failures': {'model': 'exponential', 'repair_s': '1h'},\n"
        "                       'checkpoint': {'interval_s': tau, 'write_s': 60, 'read_s': 0}}, job=j)\n"
        "        s = simulate_many(c, j, lambda dp: 5.0, seeds=2)\n"
        "        m = s.runs[0].job_mttf_s\n"
        "        rows.append({'nodes': nodes, 'interval_s': tau, 'mttf_h': m / 3600,\n"
        "                     'simulated': s.ettr_mean,\n"
        "                     'kokolis': kokolis_ettr(mttf_s=m, interval_s=tau, stall_s=60, restart_s=600),\n"
        "                     'exact': exact_ettr(mttf_s=m, interval_s=tau, stall_s=60, restart_s=600)})\n"
        "pd.DataFrame(rows).round(4)"),
    nbf.v4.new_markdown_cell(
        "## Which checkpoint interval?\n\n"
        "`planners.checkpoint.plan_checkpoint` simulates a grid around Daly's optimum with "
        "common random numbers and reports it next to Young's sqrt(2 delta M) and Daly's."),
    nbf.v4.new_code_cell(
        "from planners.checkpoint import plan_checkpoint\n"
        "sync = parse_run({'duration': '30d', 'spares': 64, 'checkpoint': {'mode': 'sync', 'write_s': 30}},\n"
        "                 job=job)\n"
        "plan = plan_checkpoint(sync, job, lambda dp: 6.0 * 128 / dp, seeds=2)\n"
        "print(f'best {plan.best_interval_s:.0f} s, Young {plan.young_interval_s:.0f} s, '\n"
        "      f'Daly {plan.daly_interval_s:.0f} s')\n"
        "plan.to_df().round(4)"),
]

nb = nbf.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3",
                                                               "display_name": "Python 3",
                                                               "language": "python"}})
nbf.write(nb, Path(__file__).resolve().parent / "longrun_failures.ipynb")
