"""Re-check a pinned launcher definition (tests/data/launchers/<name>.json) against a local copy
of its source files, e.g. a newer release: every pinned flag must still appear in the file its
`src` names, as the literal flag ("--max-num-seqs") or as the dataclass field the flag is
derived from (max_num_seqs:). Prints the names it cannot find; exit 1 when any.

Run: python benchmarks/pin_serving_args.py vllm A=path/to/vllm/engine/arg_utils.py \
         C=path/to/vllm/config/cache.py
     (git -C <checkout> show <commit>:<path> > file gives the file of a given commit)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

PINS = Path(__file__).resolve().parents[1] / "tests" / "data" / "launchers"


def missing_names(pin: dict, sources: dict[str, str]) -> list[str]:
    """Pinned flags whose source text (by source id) holds neither the flag nor its field."""
    out = []
    for flag, spec in pin.get("flags", {}).items():
        text = sources.get(spec.get("src", ""))
        if text is None:
            continue
        field = flag.lstrip("-").replace("-", "_")
        if f'"{flag}"' not in text and f"'{flag}'" not in text \
                and not re.search(rf"\b{re.escape(field)}\s*:", text):
            out.append(f"{flag} (source {spec['src']})")
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse `name SRC=FILE...`, print the pinned names missing from those files."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="vllm | sglang | trtllm")
    ap.add_argument("files", nargs="+", help="SOURCE_ID=path of a local source file")
    args = ap.parse_args(argv)
    pin = json.loads((PINS / f"{args.name}.json").read_text())
    sources = {}
    for item in args.files:
        sid, _, path = item.partition("=")
        if sid not in pin["sources"] or not path:
            ap.error(f"{item!r}: expected SOURCE_ID=FILE with SOURCE_ID in "
                     f"{sorted(pin['sources'])}")
        sources[sid] = Path(path).read_text(encoding="utf-8", errors="replace")
    missing = missing_names(pin, sources)
    for name in missing:
        print(f"missing: {name}")
    checked = sum(1 for s in pin.get("flags", {}).values() if s.get("src") in sources)
    print(f"{args.name}: {checked - len(missing)}/{checked} pinned flags found")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
