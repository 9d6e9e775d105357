"""The Dagster wiring: each asset called on tiny inputs, checks, sensors, the definitions."""
