"""The fleetsim command line (the only place that reads user files and prints)."""

from __future__ import annotations

import sys


def main() -> None:
    """Console-script entry point."""
    from fleetsim.cli.app import main as _main

    sys.exit(_main())


__all__ = ["main"]
