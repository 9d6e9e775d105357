"""The scoring group: daily scores of every machine and the maintenance worklist."""
