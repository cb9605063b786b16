"""fleetsim planners package."""
