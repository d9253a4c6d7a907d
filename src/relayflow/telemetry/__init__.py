"""What relayflow tells the people who run it: metrics (metrics.py), traces (tracing.py) and
structured logs (logs.py).

Every layer may report through this package; it imports no other relayflow package, so
reporting never drags a layer's dependencies into another (pyproject.toml's import
contracts check it).
"""
