"""Regenerate the bundled profiles hwmodels/profiles/{a100-80gb,h100-sxm}.json from the Vidur
tables in ../shared/calibration-data/vidur, byte-identically (the fit is deterministic and the
files carry the data's date, not the run's). Same code path as
`fleetsim calibrate --from-measurements DIR --device D --out hwmodels/profiles/D.json`.

Run: python benchmarks/make_profiles.py [--data DIR] [--check] [--device D ...]
--check writes nothing and exits 1 if a shipped file differs from what the tables give.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from calibration.importers import DEVICES  # noqa: E402
from calibration.importers.build import build_profile  # noqa: E402

DATA = ROOT.parent / "shared" / "calibration-data" / "vidur"
PROFILES = ROOT / "hwmodels" / "profiles"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--device", action="append", choices=sorted(DEVICES))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    status = 0
    for device in args.device or sorted(DEVICES):
        target = PROFILES / f"{device}.json"
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / target.name
                build_profile(args.data, device, out=out)
                same = target.exists() and out.read_bytes() == target.read_bytes()
            print(f"{target.relative_to(ROOT)}: {'identical' if same else 'DIFFERS'}")
            status |= 0 if same else 1
            continue
        prof = build_profile(args.data, device, out=target)
        h = prof["heldout"]["overall"]
        print(f"wrote {target.relative_to(ROOT)} ({target.stat().st_size} bytes): held-out "
              f"median |error| {h['profile']['median']:.1%} (defaults "
              f"{h['defaults']['median']:.1%})")
    return status


if __name__ == "__main__":
    sys.exit(main())
