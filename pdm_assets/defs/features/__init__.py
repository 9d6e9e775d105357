"""The features group: daily machine features and failure labels."""
