"""Dataset-level audits of the kept set: duplicates, near-duplicate queries, eval-set contamination, the call mix."""
