"""Builds notebooks/calibration_from_measurements.ipynb (run: python notebooks/make_calibration_notebook.py).

The notebook reads the Vidur kernel tables (../shared/calibration-data/vidur, MIT) through the
calibration importer, shows per-operator predicted vs measured (held out, leave one model out)
for A100 and H100, and the `fleetsim validate` side by side of catalog defaults and profiles.
It uses calibration.importers.vidur.import_vidur (raw kernel records), calibration.importers.
build.make_fitter (the fit the bundled profiles come from) and calibration.heldout.heldout_rows.
"""

from pathlib import Path

import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell(
        "# Calibration from published kernel measurements\n\n"
        "fleetsim's default efficiencies are catalog numbers; a *profile* replaces them with "
        "curves fitted to kernel-level timings. Here the timings are the Vidur project's "
        "per-operator tables (microsoft/vidur, MIT; A100-80GB and H100 DGX nodes, "
        "`../shared/calibration-data/vidur`). Three questions:\n\n"
        "1. what the measurements say about GEMM efficiency, next to the catalog;\n"
        "2. how well the fitted profile predicts operators of a model it was **not** fitted to "
        "(leave one model out), against the catalog defaults on the same operators;\n"
        "3. what the profiles do to the end-to-end published rows of `fleetsim validate`, "
        "which are validation only and never fitted."),
    nbf.v4.new_code_cell(
        "import os\n"
        "from pathlib import Path\n\n"
        "import matplotlib\n"
        "matplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\n"
        "import numpy as np\n"
        "import pandas as pd\n\n"
        "import fleetsim\n"
        "# import_vidur(root, device) -> ({family: [raw record, ...]}, provenance)\n"
        "# heldout_rows(raw, fitter, device) -> [{family, operator, fold, model, measured_s,\n"
        "#                                        predicted_s, defaults_s}, ...]\n"
        "from calibration.heldout import heldout_rows\n"
        "from calibration.importers.build import make_fitter\n"
        "from calibration.importers.vidur import import_vidur\n"
        "from hwmodels.catalog import load_device\n\n"
        "VIDUR = Path(os.environ.get('FLEETSIM_VIDUR_DIR') or\n"
        "             Path(fleetsim.__file__).resolve().parents[2] / 'shared' / 'calibration-data'\n"
        "             / 'vidur')\n"
        "assert (VIDUR / 'README.md').exists(), f'Vidur tables not found at {VIDUR}'\n"
        "DEVICES = ('a100-80gb', 'h100-sxm')\n"
        "imported = {dev: import_vidur(VIDUR, dev) for dev in DEVICES}\n"
        "raw = {dev: imported[dev][0] for dev in DEVICES}\n"
        "pd.DataFrame({dev: {fam: len(recs) for fam, recs in raw[dev].items()\n"
        "                    if isinstance(recs, list)}\n"
        "              for dev in DEVICES}).fillna(0).astype(int)"),
    nbf.v4.new_markdown_cell(
        "## GEMM efficiency: measured vs catalog\n\n"
        "Achieved fraction of the catalog's dense 16-bit peak for every measured GEMM "
        "(FLOPs / median time / peak). The catalog's A100 value (0.72) was chosen to fit the "
        "SC'21 + Korthikanti training tables end to end (see "
        "`simulator/training/validation.py`); the kernels themselves say more."),
    nbf.v4.new_code_cell(
        "rows = []\n"
        "for dev in DEVICES:\n"
        "    spec = load_device(dev)\n"
        "    for r in raw[dev].get('gemm', []):\n"
        "        peak = spec.peak(r.get('dtype', 'fp16'))\n"
        "        rows.append({'device': dev, 'model': r.get('model'), 'op': r.get('impl', 'gemm'),\n"
        "                     'flops': r['flops'], 'eff': r['flops'] / r['median_s'] / peak,\n"
        "                     'catalog_eff': spec.gemm_eff(r.get('dtype', 'fp16'))})\n"
        "gemm = pd.DataFrame(rows)\n"
        "large = gemm[gemm.flops >= 1e11]\n"
        "summary = large.groupby('device').agg(measured_median=('eff', 'median'),\n"
        "                                      measured_p10=('eff', lambda s: s.quantile(0.1)),\n"
        "                                      measured_p90=('eff', lambda s: s.quantile(0.9)),\n"
        "                                      catalog=('catalog_eff', 'first'),\n"
        "                                      shapes=('eff', 'size'))\n"
        "fig, ax = plt.subplots(figsize=(6, 3.5))\n"
        "for dev, part in gemm.groupby('device'):\n"
        "    ax.scatter(part.flops, part.eff, s=6, alpha=0.5, label=dev)\n"
        "    ax.axhline(part.catalog_eff.iloc[0], ls='--', lw=0.8,\n"
        "               color=ax.collections[-1].get_facecolor()[0])\n"
        "ax.set_xscale('log'); ax.set_xlabel('GEMM FLOPs'); ax.set_ylabel('fraction of peak')\n"
        "ax.set_title('Measured GEMMs (dashed: catalog large-GEMM efficiency)'); ax.legend()\n"
        "fig.savefig('gemm_efficiency.png', dpi=90, bbox_inches='tight')\n"
        "summary.round(3)"),
    nbf.v4.new_markdown_cell(
        "## Held out: leave one model out\n\n"
        "For each model, the profile is fitted to the other models' operators and predicts "
        "this one's; `defaults_s` is the catalog defaults' prediction of the same operator. "
        "Points on the diagonal are perfect predictions."),
    nbf.v4.new_code_cell(
        "held = pd.concat([pd.DataFrame(heldout_rows(raw[dev], make_fitter(dev, imported[dev][1]),\n"
        "                                             dev)).assign(device=dev)\n"
        "                  for dev in DEVICES], ignore_index=True)\n"
        "held = held.rename(columns={'operator': 'op'})\n"
        "held['profile_err'] = (held.predicted_s - held.measured_s).abs() / held.measured_s\n"
        "held['defaults_err'] = (held.defaults_s - held.measured_s).abs() / held.measured_s\n"
        "fig, axes = plt.subplots(1, len(DEVICES), figsize=(11, 4.5), squeeze=False)\n"
        "for ax, dev in zip(axes[0], DEVICES):\n"
        "    part = held[held.device == dev]\n"
        "    for op, grp in part.groupby('op'):\n"
        "        ax.scatter(grp.measured_s * 1e3, grp.predicted_s * 1e3, s=8, alpha=0.6, label=op)\n"
        "    lo, hi = part.measured_s.min() * 1e3 / 2, part.measured_s.max() * 1e3 * 2\n"
        "    ax.plot([lo, hi], [lo, hi], color='k', lw=0.8)\n"
        "    ax.set_xscale('log'); ax.set_yscale('log')\n"
        "    ax.set_xlabel('measured (ms)'); ax.set_ylabel('profile, held out (ms)')\n"
        "    ax.set_title(dev)\n"
        "axes[0][-1].legend(fontsize=6, ncol=2, loc='upper left')\n"
        "fig.savefig('heldout_scatter.png', dpi=90, bbox_inches='tight')\n"
        "held.groupby('device')[['profile_err', 'defaults_err']].median().mul(100).round(1)"),
    nbf.v4.new_markdown_cell(
        "Median held-out |error| per operator (%), profile vs catalog defaults on the same "
        "operators; `better` says which one wins. The target for a shipped profile is a "
        "median of 10% or less."),
    nbf.v4.new_code_cell(
        "per_op = (held.groupby(['device', 'op'])\n"
        "          .agg(n=('measured_s', 'size'), profile_pct=('profile_err', 'median'),\n"
        "               defaults_pct=('defaults_err', 'median')))\n"
        "per_op[['profile_pct', 'defaults_pct']] *= 100\n"
        "per_op['better'] = np.where(per_op.profile_pct < per_op.defaults_pct, 'profile',\n"
        "                            'defaults')\n"
        "per_op.round(1)"),
    nbf.v4.new_markdown_cell(
        "## End to end: `fleetsim validate` side by side\n\n"
        "The published training and serving rows predicted with the catalog defaults and with "
        "each bundled profile (a profile applies to its own device's rows). Same as "
        "`python -m fleetsim validate all --json`."),
    nbf.v4.new_code_cell(
        "from fleetsim.cli.validate_cmds import choose_sources, validation_report\n\n"
        "sources = choose_sources()\n"
        "report = validation_report('all', sources)\n"
        "table = []\n"
        "for suite, data in report.items():\n"
        "    for s in data['summary']:\n"
        "        line = {'suite': suite, 'table': s['table'], 'rows': s['rows'],\n"
        "                'defaults MAPE %': s['mape_pct']}\n"
        "        for src in sources[1:]:\n"
        "            mine = s['by_source'][src.name]\n"
        "            line[f'{src.name} MAPE %'] = None if mine is None else mine['mape_pct']\n"
        "            line[f'{src.name}'] = 'n/a' if mine is None else mine['verdict']\n"
        "        table.append(line)\n"
        "print('sources:', [s.name for s in sources])\n"
        "pd.DataFrame(table).round(1)"),
]
nb = nbf.v4.new_notebook(cells=cells, metadata={"kernelspec": {
    "name": "python3", "display_name": "Python 3", "language": "python"}})
nbf.write(nb, Path(__file__).with_name("calibration_from_measurements.ipynb"))
