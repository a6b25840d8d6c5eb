"""The engine's runtime: the worker, the embedded Temporal server, the router and its contracts."""
