"""Review a run by hand: a local page to mark verdicts right or wrong, kept in the run folder's overrides.jsonl."""
