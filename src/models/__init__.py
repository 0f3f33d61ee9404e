"""Data access, one module per collection: plain dicts in and out, `db` passed in, no Flask."""
