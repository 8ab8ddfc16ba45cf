"""The service's request log (`seqlens serve --request-log DIR`) read back as `Answers`, for the same window
statistics and drift checks as a replayed log.

The log holds, per request, its time, history length, the recommended ids, the attention statistics per layer,
the last layer's attention mass per popularity bucket and the latest item's bucket; not the history's items.
So the statistics that need the attended items themselves (`attention_hhi`, attention per attribute value)
are not computed from it; the popularity-bucket shares come from what each request recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from seqlens.data.log import TIME, USER
from seqlens.errors import DataError
from seqlens.monitor.attention_stats import STATISTICS
from seqlens.monitor.replay import Answers
from seqlens.monitor.windows import POPULARITY_BUCKETS
from seqlens.recommenders import Recommender


def read_requests(folder: str | Path, model: Recommender) -> Answers:
    """Every record of the `requests-*.jsonl*` files in `folder` (rotated ones too), oldest first."""
    folder = Path(folder)
    files = sorted(folder.glob("requests-*.jsonl*"))
    if not files:
        raise DataError(f"{folder}: no request log files (requests-*.jsonl) here")
    entries = [entry for path in files for entry in _lines(path)]
    if not entries:
        raise DataError(f"{folder}: the request log files hold no records")
    entries.sort(key=lambda e: e["time"])
    layers = len({key.split("@")[1] for key in entries[0].get("stats", {})})
    records = pd.DataFrame(
        {TIME: [int(e["time"]) for e in entries], USER: "", "length": [e["length"] for e in entries]}
    )
    for name in (f"{s}@{layer}" for s in STATISTICS for layer in range(layers)):
        records[name] = [e.get("stats", {}).get(name, np.nan) for e in entries]
    k = max(len(e["recommended"]) for e in entries)
    recommended = np.zeros((len(entries), k), dtype=np.int64)
    for row, e in enumerate(entries):
        if e["recommended"]:
            recommended[row, : len(e["recommended"])] = model.encode_items([str(i) for i in e["recommended"]])
    shares = {}
    if all("attention_by_popularity" in e for e in entries):
        shares["attention_by_popularity"] = np.array([e["attention_by_popularity"] for e in entries], dtype=np.float64)
    if all("latest_popularity" in e for e in entries):
        shares["latest_by_popularity"] = np.eye(POPULARITY_BUCKETS)[[e["latest_popularity"] for e in entries]]
    empty = np.zeros(0, dtype=np.int64)
    return Answers(
        records, recommended, empty, np.zeros(0), empty, layers, np.zeros(len(entries), dtype=np.int64), shares
    )


def _lines(path: Path) -> list[dict]:
    entries = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: line {number}: not a JSON record ({err.msg})") from None
            if not isinstance(entry, dict) or not {"time", "length", "recommended"} <= set(entry):
                raise DataError(f"{path}: line {number}: a record needs time, length and recommended")
            entries.append(entry)
    return entries
