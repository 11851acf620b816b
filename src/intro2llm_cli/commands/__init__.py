"""One module per CLI command: parse, call ``Course``, render with ``views``."""
