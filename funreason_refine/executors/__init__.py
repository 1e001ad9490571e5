"""Where records are refined: this process, worker processes, an event loop with judges.

Each executor is one module behind the interface in base.py; the engine picks one and owns
everything else of a run (the folder, resume, accounting, summary, hooks).
"""
