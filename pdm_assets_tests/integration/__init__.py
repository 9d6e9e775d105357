"""Whole graphs, servers, daemons, clusters and subprocesses: the slow group (CI runs it)."""
