"""Past one machine: shards any scheduler can run, their merge, their progress, and a Ray executor."""
