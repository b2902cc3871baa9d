"""atheris fuzz harnesses for Pinion's decoders (``make fuzz``; see ``python -m fuzz.run --help``)."""
