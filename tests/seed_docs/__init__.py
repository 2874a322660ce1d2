"""Tests of the seed documents' code blocks, one file per document (see support.py)."""
