"""fleetsim simulator package."""
