"""The form a predictor takes OIP inputs in (`oip_tensors` on its class), without numpy.

Kept apart from tensors.py so that loading a predictor and registering the OIP routes import no
numpy: a predictor that never uses it starts without paying for it, and the first OIP request (or
the import the runtime starts once it is ready: app.py) brings it in.
"""

from __future__ import annotations

import weakref
from typing import Any

from .errors import PredictorFault

FORMATS = ("numpy", "torch", "list")
DEFAULT_FORMAT = "numpy"

# The form each predictor asked for, read once per predictor instance.
_formats: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()


def input_format(predictor: Any) -> str:
    """`oip_tensors` of the predictor class: "numpy" (the default), "torch" or "list"."""
    cls = type(predictor)
    found = _formats.get(cls)
    if found is None:
        found = _formats[cls] = format_of(cls)
    return found


def format_of(cls: type) -> str:
    """The class's `oip_tensors`, checked: the predictor loader calls it too, so a bad value stops start-up."""
    found = getattr(cls, "oip_tensors", DEFAULT_FORMAT)
    if not isinstance(found, str) or found not in FORMATS:
        raise PredictorFault(f"{cls.__name__}.oip_tensors is {found!r:.80}; it must be one of {', '.join(map(repr, FORMATS))}")
    return found
