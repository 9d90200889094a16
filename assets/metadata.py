"""What the asset modules share to write Dagster metadata."""

from __future__ import annotations

import math
from typing import Any


def float_or_nan(value: Any) -> float:
    """A metadata float: the value, or NaN when it is missing or not finite."""
    return float(value) if value is not None and math.isfinite(value) else float("nan")
