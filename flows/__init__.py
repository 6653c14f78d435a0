"""Prefect flows: wiring only. Each flow reads like a table of contents of its tasks."""
