"""Training engines other than the default one-machine path in training.py (`fit_models`).

An engine computes the same models from the same events and hands back a `training.Trained`, so
the version it publishes is the one `recommend` and `serve` already load.
"""
