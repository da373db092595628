"""Where the repository and the real footage are."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# real footage beside the checkout (../shared/media), or STREAMSEG_MEDIA, e.g. a GPU machine's copy
MEDIA = Path(os.environ.get("STREAMSEG_MEDIA") or ROOT.parent / "shared" / "media")
