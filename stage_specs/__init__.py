"""Built-in stage specs (TOML), installed as ``funreason_refine.stage_specs``; copy and edit them."""
