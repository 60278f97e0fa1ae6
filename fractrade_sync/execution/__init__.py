"""Action -> order -> outcome on the worker thread: the pipeline, its waves, sending exactly once, protection."""
