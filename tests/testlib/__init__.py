"""Helpers shared by the test layers (importable because pytest puts tests/ on sys.path)."""
