"""Pure training-iteration costs: rank placement, collectives on real groups, per-chunk op costs,
gradient sync and the optimizer step. No SimPy: the simulator and the planner both call these."""
