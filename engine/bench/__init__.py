"""Benchmarks behind `switchboard bench <name>`: each module exposes `add_arguments(parser)` and
`run(args) -> dict` of figures (speeds, ratios against a baseline, and the answers compared)."""
