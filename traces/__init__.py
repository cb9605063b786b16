"""fleetsim traces package."""
