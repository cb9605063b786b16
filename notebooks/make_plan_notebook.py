"""Builds notebooks/plan_llama3_70b.ipynb (run: python notebooks/make_plan_notebook.py)."""

from pathlib import Path

import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell(
        "# Planning Llama-3-70B: training on 512 H100s, serving the Azure conversation trace\n\n"
        "Two questions a capacity planner asks before booking hardware. **Training:** which "
        "TP/PP/DP split, micro-batch, recompute and schedule makes Llama-3-70B fastest on 512 "
        "H100s? `planners.plan_train` enumerates plans, prunes what breaks divisibility or "
        "memory, ranks the rest in closed form and simulates the best. **Serving:** which "
        "device type, replica shape and batching policy carry the Azure LLM conversation "
        "trace inside a latency SLO for the fewest dollars? `planners.serve.plan_serve` finds "
        "each configuration's maximum sustainable rate by bisection with the serving "
        "simulator and ranks by goodput per dollar."),
    nbf.v4.new_markdown_cell(
        "## Training plan\n\nSequence length 8192, 512 sequences per step (4M tokens), bf16. "
        "The constraints keep the search small for this example: TP 4 or 8 (within a node), "
        "PP 4 or 8, 1F1B or interleaved schedules, ZeRO-1, sequence parallelism on."),
    nbf.v4.new_code_cell(
        "import pandas as pd\n"
        "from planners.train import plan_train\n"
        "from planners.train_space import TrainConstraints\n"
        "constraints = TrainConstraints(tp=(4, 8), pp=(4, 8), vpp=(1, 2, 4), "
        "micro_batches=(1, 2),\n"
        "                               zero=(1,), recompute=('selective', 'full'),\n"
        "                               sequence_parallel=(True,), "
        "schedules=('1f1b', 'interleaved'))\n"
        "train = plan_train('llama3-70b', 'h100-sxm', 512, seq_len=8192, global_batch=512,\n"
        "                   constraints=constraints, top_k=5, simulate_top=6,\n"
        "                   intra_node='nvlink4', inter_node='ib-ndr')\n"
        "print(train.counts())\n"
        "cols = ['tp', 'pp', 'vpp', 'dp', 'micro_batch', 'recompute', 'schedule', "
        "'tokens_per_s', 'mfu',\n"
        "        'peak_memory_gib', 'compute_s', 'exposed_comm_s', 'bubble_s', "
        "'optimizer_s']\n"
        "assert not train.plans.empty\n"
        "train.plans[cols].round(3)"),
    nbf.v4.new_markdown_cell(
        "The breakdown explains the ranking: deeper pipelines pay bubble (interleaving "
        "shrinks it at the price of more point-to-point traffic), wider TP pays exposed "
        "all-reduce/all-gather time, full recompute pays a third more compute but frees "
        "activation memory.\n\n"
        "## Serving plan\n\nThe workload is the bundled sample of the Azure LLM inference "
        "trace 2023, conversation service (first 2,000 requests; Patel et al., Splitwise, "
        "ISCA'24). SLO: 90% of requests must see a time-to-first-token under 2 s *and* a time "
        "per output token under 100 ms (DistServe's SLO attainment)."),
    nbf.v4.new_code_cell(
        "from traces.readers import read_trace\n"
        "from traces.stats import trace_stats\n"
        "trace = read_trace('azure-conv-2023-sample')\n"
        "stats = trace_stats(trace)\n"
        "{k: stats[k] for k in ('requests', 'duration_s', 'rate_rps', 'interarrival_cv', "
        "'input_tokens', 'output_tokens')}"),
    nbf.v4.new_markdown_cell(
        "Search space: A100-80GB, H100-SXM and H200 at catalog prices; TP 2/4/8; vLLM "
        "(prefill-first) or Sarathi (chunked prefill, 512 or 2048 tokens); max_num_seqs 128 or "
        "256; co-located replicas and prefill:decode disaggregated units (1:1, 1:2, 2:1). Each "
        "unit's maximum rate is bisected on the first 400 requests of the trace (5% "
        "tolerance, the window at least 3x the unit's batch slots); the best 3 deployments are "
        "then simulated whole on all 2,000 requests, adding replicas if the SLO does not "
        "hold."),
    nbf.v4.new_code_cell(
        "from planners.executors import LocalExecutor\n"
        "from planners.serve import plan_serve\n"
        "with LocalExecutor(max_workers=2) as ex:\n"
        "    serve = plan_serve('llama3-70b', trace, slo_ttft_s=2.0, slo_tpot_s=0.1, "
        "slo_percentile='p90',\n"
        "                       devices=['a100-80gb', 'h100-sxm', 'h200'], tp=(2, 4, 8),\n"
        "                       schedulers=['vllm', 'sarathi'], chunk_sizes=(512, 2048),\n"
        "                       max_num_seqs=(128, 256), disaggregation=['1:1', '1:2', '2:1'],\n"
        "                       confirm_top=3, executor=ex)\n"
        "print(serve.counts())\n"
        "print(len(serve.failures), 'failed evaluations', "
        "(serve.failures[0][:160] if serve.failures else ''))\n"
        "cols = ['device', 'tp', 'placement', 'pd_ratio', 'scheduler', 'token_budget', "
        "'max_num_seqs',\n"
        "        'unit_rate_rps', 'units', 'gpus', 'cost_usd_per_hour', 'requests_per_usd', "
        "'confirmed',\n"
        "        'confirmed_attainment']\n"
        "assert serve.plans['meets_workload'].iloc[0]\n"
        "serve.plans[cols].head(10).round(3)"),
    nbf.v4.new_markdown_cell(
        "Why some configurations are absent: the pruned table names the reason (memory: "
        "weights that do not fit or a KV cache too small for the longest request; "
        "divisibility; estimate: units that could not beat the best simulated one even at "
        "3x their closed-form rate, so they were never simulated)."),
    nbf.v4.new_code_cell(
        "why = serve.pruned['reason'].str.split(':').str[0]\n"
        "display(serve.pruned.assign(why=why).groupby(['device', 'tp', 'why']).size()"
        ".unstack(fill_value=0))\n"
        "serve.pruned[why == 'memory']['reason'].drop_duplicates().str.slice(0, 150).tolist()"),
    nbf.v4.new_markdown_cell(
        "## Cost vs goodput\n\nEvery unit deployed 1, 2, ... times up to what the workload "
        "needs; the black line is the Pareto front (no cheaper deployment delivers more "
        "goodput)."),
    nbf.v4.new_code_cell(
        "from IPython.display import Image\n"
        "serve.plot('plan_serve_front.png', title='Llama-3-70B on Azure conv 2023 (P90 "
        "TTFT 2 s, TPOT 100 ms)')\n"
        "display(serve.pareto[['device', 'tp', 'placement', 'pd_ratio', 'scheduler', "
        "'units', 'gpus',\n"
        "                      'cost_usd_per_hour', 'goodput_rps']].round(3))\n"
        "Image(filename='plan_serve_front.png')"),
    nbf.v4.new_markdown_cell(
        "## Re-run the winner as a scenario\n\n`ServePlanResult.scenario(rank)` gives the "
        "scenario mapping of a plan; saved as YAML it runs with `fleetsim simulate serve`. "
        "Here we simulate it directly on the whole trace."),
    nbf.v4.new_code_cell(
        "import yaml\n"
        "from simulator.serving import load_serving_scenario, simulate_serving\n"
        "mapping = serve.scenario(0, model_ref='llama3-70b')\n"
        "mapping['workload'] = {'trace': 'azure-conv-2023-sample'}\n"
        "print(yaml.safe_dump(mapping, sort_keys=False))\n"
        "summary = simulate_serving(load_serving_scenario(mapping), trace).summary()\n"
        "{k: summary[k] for k in ('completed', 'ttft_s', 'tpot_s', 'slo_attainment', "
        "'goodput_rps', 'cost_usd')}"),
]

nb = nbf.v4.new_notebook(cells=cells, metadata={"kernelspec": {
    "name": "python3", "display_name": "Python 3", "language": "python"}})
nbf.write(nb, Path(__file__).with_name("plan_llama3_70b.ipynb"))
