"""How records are refined: in this process, in a pool of worker processes, or on an event loop that asks judges.

Each refiner is one module behind the interface in base.py; the engine picks one and owns
everything else of a run (the folder, resume, accounting, summary, hooks). Where the parts of a
run are refined (here, as shards any scheduler starts, on Ray) is the other axis: executors/.
"""
