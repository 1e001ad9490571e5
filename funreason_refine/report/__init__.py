"""Reading a run folder back: the audit report, the discard browser and run comparison."""
