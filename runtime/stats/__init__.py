"""expc.runtime.stats: pure statistical functions over sufficient statistics.

Every function takes :class:`~expc.runtime.stats.moments.Moments` (arrays with
one entry per arm) and returns arrays, so one call evaluates every treatment
against the control at once. No data access here: the SQL that reduces events
to moments lives elsewhere.
"""
