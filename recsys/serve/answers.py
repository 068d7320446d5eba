"""What the API's answers are made of, shared by the app and the engine processes: JSON-safe values and
the 503 a full queue answers."""
from __future__ import annotations

import numpy as np
from fastapi import HTTPException


class Busy(HTTPException):
    """Every engine thread (or process) is busy and ``queue`` requests already wait: 503 with Retry-After."""

    def __init__(self, waiting: int) -> None:
        super().__init__(status_code=503, headers={"Retry-After": "1"},
                         detail=f"server busy: {waiting} requests already waiting, retry shortly")


def clean(v):
    """JSON-safe scalar: NaN/NA -> None, numpy -> Python."""
    if v is None:
        return None
    try:
        import pandas as pd

        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(v, np.generic):
        return v.item()
    return v


def rec_dict(r) -> dict:
    """A :class:`~recsys.recommend.Recommendation` (or any object with ``to_dict``) as a JSON-safe dict."""
    d = r.to_dict() if hasattr(r, "to_dict") else dict(vars(r))
    return {k: clean(v) if not isinstance(v, list) else v for k, v in d.items()}
