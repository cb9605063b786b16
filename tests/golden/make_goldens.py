"""Regenerate the golden JSON files: `python tests/golden/make_goldens.py [NAME ...]`.

Only run this in a commit that names the bug whose fix changes the numbers.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_cases import CASES  # noqa: E402


def run_case(args: tuple[str, ...]) -> dict:
    """Run `fleetsim ARGS --json` in-process and return its JSON object."""
    from fleetsim.cli.app import main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main([*args, "--json"])
    if code != 0:
        raise RuntimeError(f"{args}: exit {code}")
    return json.loads(buf.getvalue())


def main(names: list[str]) -> None:
    here = Path(__file__).resolve().parent
    for name in names or list(CASES):
        out = run_case(CASES[name])
        (here / f"{name}.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
        print("wrote", name)


if __name__ == "__main__":
    main(sys.argv[1:])
