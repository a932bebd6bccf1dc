"""Command-line tools around a running server: ``load`` (traffic) and ``watch`` (live view)."""
