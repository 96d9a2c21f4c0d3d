"""Fixtures of the notifier's tests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the helpers module beside this file, under --import-mode=importlib
