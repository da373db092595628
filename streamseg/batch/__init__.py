"""``streamseg batch``: many videos, each one ordinary ``Pipeline`` run, resumable, locally or on Ray.

inputs (what to process) -> driver (skip what the manifest says is done, run the rest on an executor,
append each result to the manifest) -> job (one video into temporary names, renamed into place when complete).
"""
