"""Hypothesis fuzz tests of the decoders, seeded with the fixture CARs."""
