"""One module per method; each registers itself with ``vision.register``."""
