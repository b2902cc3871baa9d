"""Pinion blockstore layer."""
