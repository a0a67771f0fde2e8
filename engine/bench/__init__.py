"""Benchmarks behind `switchboard bench <name>`: each module exposes `add_arguments(parser)` and
`run(args) -> dict` of figures (speeds, ratios against a baseline, and the answers compared).

Two helper modules are no benchmark: `processes` (a free loopback port, stopping a child process) and
`sipp` (SIPp's command line and caller INVITE), shared by the call bench and the tests that run the
engine, SIPp or phones as processes (tests may import engine code; engine code never imports tests).
"""
