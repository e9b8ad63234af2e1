"""crosskey's AWS emulator: the pinned moto server plus a WSGI middleware that adds the
behaviour moto lacks (see README.md in this directory)."""
