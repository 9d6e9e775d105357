"""The raw group: the landed tables, validated into raw rows and quarantine."""
