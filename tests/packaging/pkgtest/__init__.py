"""Helpers of the packaging tests (host and guest side), one module per concern.

Imported by tests/packaging/ only (pytest puts that folder on sys.path, as it
does for every test folder without an __init__.py)."""
