"""Offline evaluation for `recsys evaluate`: train/test splits (split.py), ranking and
catalog metrics (metrics.py) and the terminal/HTML report (report.py).

Everything here is a pure function of arrays and DataFrames; nothing reads files.
"""
