"""Pinion cluster layer."""
