"""The core and the adapters, on tiny frames and one shared Spark session."""
