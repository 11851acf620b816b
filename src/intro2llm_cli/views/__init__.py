"""All terminal output. Only this package imports rich; it renders, never decides."""
