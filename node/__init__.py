"""Pinion node layer."""
