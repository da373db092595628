"""Which optional extras are installed; tests that need a missing one skip, naming it."""

from __future__ import annotations

import importlib.util

HAS_TORCH = importlib.util.find_spec("torch") is not None
