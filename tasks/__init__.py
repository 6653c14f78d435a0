"""Prefect tasks: thin wrappers around driftline library calls.

They add what orchestration needs and nothing else: retries for transient failures (a locked
database, an unreachable tracking server), logging, and Prefect artifacts that explain each
run. Tasks pass DataFrames and models in memory, so they opt out of input-hash caching
(``NO_CACHE``); re-running a whole run is made safe by the registry's idempotency key instead.
"""
