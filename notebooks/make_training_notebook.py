"""Builds notebooks/training_iteration.ipynb (run: python notebooks/make_training_notebook.py)."""

from pathlib import Path

import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell(
        "# One training iteration, simulated\n\n"
        "`simulator.training.simulate_iteration` runs one optimizer step of a parallel plan as a "
        "SimPy simulation: one process per pipeline stage executes its schedule, activations and "
        "gradients travel between stages as link events, every TP/DP/CP/EP collective is costed "
        "on the ranks Megatron would place it on. Here: GPT-3 175B on 1024 A100s."),
    nbf.v4.new_code_cell(
        "from pathlib import Path\n"
        "import pandas as pd\n"
        "import yaml\n"
        "import simulator\n"
        "from simulator.training import load_training_scenario, simulate_iteration, "
        "apply_overrides\n"
        "scenario_file = Path(simulator.__file__).parent / 'scenarios' / 'gpt3-175b-a100.yaml'\n"
        "raw = yaml.safe_load(scenario_file.read_text())\n"
        "sc = load_training_scenario(raw, file=str(scenario_file))\n"
        "result = simulate_iteration(sc.model, sc.cluster, sc.training, sc.parallel, "
        "timeline=True)\n"
        "pd.Series(result.to_dict()).drop('memory_per_stage_gib')"),
    nbf.v4.new_markdown_cell(
        "## The timeline\n\nThe same events can be written as a Chrome trace "
        "(`simulator.training.timeline.write_chrome_trace`, opens in Perfetto). A smaller "
        "variant of the plan (PP4, 8 microbatches) keeps the Gantt chart readable: blue "
        "forward, orange backward, red the gradient reduction tail, purple the optimizer."),
    nbf.v4.new_code_cell(
        "from IPython.display import Image\n"
        "from simulator.training.plot import plot_pipeline\n"
        "small = load_training_scenario(apply_overrides(raw, [\n"
        "    'cluster.num_devices=64', 'parallelism.pp=4', 'parallelism.vpp=1',\n"
        "    'parallelism.schedule=1f1b', 'training.global_batch=16']))\n"
        "r_small = simulate_iteration(small.model, small.cluster, small.training, "
        "small.parallel, timeline=True)\n"
        "Image(filename=str(plot_pipeline(r_small.timeline, 'gantt.png', "
        "title='GPT-3 175B, TP8 PP4 DP2, 1F1B')))"),
    nbf.v4.new_markdown_cell(
        "## Where the time goes as TP and PP change\n\nSame model, cluster and batch; only the "
        "split changes. More pipeline stages add bubble, more tensor parallelism adds exposed "
        "communication (and TP beyond a node rides InfiniBand)."),
    nbf.v4.new_code_cell(
        "rows = []\n"
        "for tp, pp in [(4, 16), (8, 8), (8, 16), (16, 8)]:\n"
        "    s = load_training_scenario(apply_overrides(raw, [f'parallelism.tp={tp}', "
        "f'parallelism.pp={pp}',\n"
        "        'parallelism.vpp=1', 'parallelism.schedule=1f1b']))\n"
        "    r = simulate_iteration(s.model, s.cluster, s.training, s.parallel)\n"
        "    rows.append({'tp': tp, 'pp': pp, 'dp': s.parallel.dp, "
        "'iteration_s': r.iteration_time_s,\n"
        "                 'mfu': r.mfu, **r.breakdown.to_dict(), "
        "'memory_gib': r.peak_memory_gib,\n"
        "                 'fits': r.fits_memory})\n"
        "sweep = pd.DataFrame(rows)\n"
        "assert (sweep.iteration_s > 0).all()\n"
        "sweep.round(3)"),
    nbf.v4.new_code_cell(
        "ax = sweep.assign(plan=sweep.tp.astype(str) + 'x' + sweep.pp.astype(str))"
        ".set_index('plan')[\n"
        "    ['compute_s', 'exposed_comm_s', 'bubble_s', 'optimizer_s']].plot.bar(stacked=True)\n"
        "ax.set_ylabel('seconds per iteration'); ax.set_xlabel('TP x PP');"),
]

nb = nbf.v4.new_notebook(cells=cells, metadata={"kernelspec": {
    "name": "python3", "display_name": "Python 3", "language": "python"}})
nbf.write(nb, Path(__file__).with_name("training_iteration.ipynb"))
