"""Machinery shared by every kind of background work: the retry policy."""
