"""Pinion bitswap layer."""
