"""guardrl: train decision policies from logged data, prove on evidence whether they are safe to try."""

__version__ = "0.1.0"
