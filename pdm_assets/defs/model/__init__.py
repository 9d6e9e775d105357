"""The model group: the monthly classifier, its alert policy and its registration."""
