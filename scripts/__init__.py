"""Maintenance scripts; the Python ones are importable by the tests (`scripts.<name>`)."""
