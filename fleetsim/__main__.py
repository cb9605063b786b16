"""`python -m fleetsim ...`: the same command line as the `fleetsim` console script."""

from fleetsim.cli import main

if __name__ == "__main__":
    main()
