"""fleetsim calibration package."""
