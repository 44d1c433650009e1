"""Execution: listing, skip-if-done, retries, concurrency (in-process or Ray), progress, stats."""
