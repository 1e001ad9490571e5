"""Where the parts of a run are refined: here, as shards any scheduler starts, or on Ray; and their finish.

A shard is a part of the input refined into its own run folder through the engine's lifecycle;
``refine merge`` is the engine's finish over the shards. How each part's records are refined (in
this process, a process pool, the judged event loop) is the other axis: refiners/.
"""
