"""expc.runtime: everything that acts on a compiled plan.

Assignment (hashing, conditions, batch assignment), generation, statistics,
simulation, runs and reports. The runtime works from the plan, never from raw YAML,
and may import numpy and duckdb; the compiler never imports the runtime.
"""
