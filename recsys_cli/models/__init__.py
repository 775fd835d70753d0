"""Recommenders behind one interface (see base.py)."""
