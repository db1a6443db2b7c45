"""rangeset: half-open integer intervals and sets of them."""

from .core import Interval, intersect, merge, total_length
from .rangeset import RangeSet

__all__ = ["Interval", "RangeSet", "intersect", "merge", "total_length"]
__version__ = "0.4.0"
