"""Stand-ins for Twenty and Whop: real ASGI apps, faithful to the fact sheets and the real servers.

They live beside `bridge/` rather than under `tests/` because the demo (`scripts/demo`) and the
benchmarks (`bench/`) run them too, not only the tests. They import nothing from `tests/`.
`python -m fakes.twenty` and `python -m fakes.whop` run each on its own.
"""
