"""The monitoring group: realised outcomes of past alerts, and drift."""
