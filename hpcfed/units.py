"""Numbers for people: a quantity with an SI prefix, as every summary and table prints it."""
from __future__ import annotations

import math


def si(value: float, unit: str) -> str:
    """``value`` with an SI prefix (k, M, G, T) and ``unit``, three significant digits (``1.23 GMAC``)."""
    if not math.isfinite(value):
        return f"{value} {unit}"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"
