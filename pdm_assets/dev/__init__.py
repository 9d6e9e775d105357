"""For people, not for runs: the demo (`make demo`), its progress lines, and the signal reset that
`make ui` runs `dagster dev` under."""
