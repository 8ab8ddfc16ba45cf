"""What every recommender shares: external<->internal ids, remembered histories, `recommend`, parameters.

Follows scikit-learn: constructor arguments are stored unchanged as attributes (`get_params`), and what
`fit` learns ends in an underscore. External ids (strings) go in and come out; internal indices
(1..n_items, 0 = padding/unknown) never leak.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import Tensor

from seqlens.data.log import ITEM, USER, InteractionLog
from seqlens.data.sequences import Sequences
from seqlens.errors import DataError
from seqlens.eval.protocol import histories_for, scored_batches
from seqlens.recommenders.artifacts import save_model
from seqlens.recommenders.registry import MODELS
from seqlens.train.config import DISPLAY_ONLY


class NotFittedError(RuntimeError):
    pass


class Recommender:
    """Base class; subclasses implement `fit`, `score_histories` and their learned state (`_state`)."""

    #: every subclass by name, so `seqlens.load` can rebuild one from its saved config (registry.MODELS)
    registry: dict[str, type[Recommender]] = MODELS
    # learned or loaded state that every model may carry (set by fit, load or the caller)
    dataset_: dict  # what it was trained on: source, counts, fingerprint
    history_: list[dict]  # one record per training epoch (neural models)
    metrics_: dict  # test metrics saved with the model
    config_: dict  # the artifact's config.json, when loaded

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        MODELS[cls.__name__] = cls

    # --- parameters ------------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> Recommender:
        """Change parameters, scikit-learn style (`clone` and grid searches rely on it). Stored as given and
        validated at the next `fit`, as constructor arguments are."""
        unknown = sorted(set(params) - set(self._param_names()))
        if unknown:
            raise DataError(f"{type(self).__name__} has no parameter(s) {', '.join(unknown)}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def params_differ(self, expected: Mapping[str, Any]) -> dict[str, Any]:
        """This model's values of the `expected` parameters it does not match (None for one it does not have),
        display-only ones (`progress`) aside.

        Empty when the model was made with those settings: check it before reusing a saved model instead of
        training again (a benchmark, a cache of runs), so that nothing trained otherwise is taken for it.
        """
        params = self.get_params()
        return {k: params.get(k) for k, v in expected.items() if k not in DISPLAY_ONLY and params.get(k) != v}

    def _validate_params(self) -> None:
        """Subclasses check their parameters here (`fit` and `load` call it)."""

    @classmethod
    def _legacy_params(cls) -> dict:
        """Values implied for parameters an artifact saved before they existed does not list."""
        return {}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # --- ids ----------------------------------------------------------------------------------------
    def _index_items(self, log: InteractionLog) -> None:
        ids = np.sort(log.df[ITEM].unique())
        titles = log.titles()
        self._set_items(ids, {i: titles[i] for i in ids if i in titles})

    def _set_items(self, item_ids: np.ndarray, titles: dict[str, str]) -> None:
        self.item_ids_ = np.asarray(item_ids, dtype=object)
        self.n_items_ = len(self.item_ids_)
        self.n_warm_ = self.n_items_  # items 1..n_warm_ occur in training; a feature model adds cold ones after
        self._item_index = pd.Index(self.item_ids_)
        self.item_titles_ = titles

    def encode_items(self, item_ids: Iterable) -> np.ndarray:
        """External item ids -> internal indices 1..n_items, 0 where unknown."""
        self._check_fitted()
        ids = np.asarray([str(i) for i in item_ids] if not isinstance(item_ids, np.ndarray) else item_ids.astype(str))
        return self._item_index.get_indexer(ids).astype(np.int64) + 1

    def decode_items(self, index: np.ndarray) -> np.ndarray:
        return self.item_ids_[np.asarray(index) - 1]

    def history_counts(self) -> np.ndarray:
        """Interactions per internal item index [n_items + 1] in the stored histories (index 0, padding: 0)."""
        self._check_fitted()
        return np.bincount(self.histories_.flat, minlength=self.n_items_ + 1)

    def history_of(self, user: str) -> list[str]:
        """The stored history of a user seen in `fit` (external item ids, oldest first)."""
        self._check_fitted()
        row = self._user_index.get_indexer([str(user)])[0]
        if row < 0:
            raise DataError(f"user {user!r} was not seen in fit")
        return list(self.decode_items(self.histories_[row]))

    def user_codes_for(self, users: Sequence[str] | np.ndarray) -> np.ndarray | None:
        """The stored user attribute codes [len(users), columns] a model that reads them scores known `users`'
        histories with (unknown for users the table did not hold); None for a model that reads none."""
        return None

    def attribute_codes_for(self, values: Sequence[Mapping[str, str] | None]) -> np.ndarray | None:
        """The user attribute codes [len(values), columns] of ad-hoc histories, from their given `values` (column ->
        value per history, None: unknown); None for a model that reads none."""
        if any(v is not None for v in values):
            raise DataError(f"user_attributes given, but {type(self).__name__} reads no user attributes")
        return None

    def context_codes_for(self, values: Sequence[Mapping[str, str] | None]) -> np.ndarray | None:
        """The request context codes [len(values), columns] a model that reads context scores each request with
        (`values`: column -> value per request, None: unknown); None for a model that reads none."""
        if any(v is not None for v in values):
            raise DataError(f"context given, but {type(self).__name__} reads no request context")
        return None

    def event_context_codes(self, events: pd.DataFrame) -> np.ndarray | None:
        """The context codes [len(events), columns] of a log's events as requests (their own context values), for a
        model that reads context (evaluation: each test event's context is its request's); None otherwise."""
        return None

    def _remember_histories(self, log: InteractionLog) -> None:
        """Store each user's history (for `recommend(users=...)`) in internal indices, without the items the
        model does not know (as evaluation reads histories): kept as padding, an unknown latest item (a
        validation item never seen in training) would hide the whole history."""
        users = log.grouped()[0]
        self._set_histories(users, histories_for(self, users, log))

    def _set_histories(self, user_ids: np.ndarray, histories: Sequences) -> None:
        self.user_ids_ = np.asarray(user_ids, dtype=object)
        self._user_index = pd.Index(self.user_ids_)
        self.histories_ = histories

    def _setup(self, log: InteractionLog | pd.DataFrame) -> InteractionLog:
        """Common first step of `fit`: index items, remember histories, record what data was seen."""
        log = as_log(log)
        self._index_items(log)
        self._remember_histories(log)
        self.dataset_ = {
            "source": log.source,
            "fingerprint": log.fingerprint(),
            "n_users": log.n_users,
            "n_items": log.n_items,
            "n_interactions": len(log),
        }
        return log

    def _check_fitted(self) -> None:
        if not hasattr(self, "item_ids_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(log) first")

    # --- to be implemented -----------------------------------------------------------------------
    def fit(self, log: InteractionLog, valid: InteractionLog | None = None) -> Recommender:
        raise NotImplementedError

    def score_histories(self, histories: Sequences, rows: np.ndarray) -> Tensor:
        """Scores [len(rows), n_items + 1] of the next item after each history; column 0 is -inf."""
        raise NotImplementedError

    def _state(self) -> dict[str, Tensor]:
        """Learned tensors to save (ids and histories are saved by the base)."""
        raise NotImplementedError

    def _load_state(self, tensors: dict[str, Tensor]) -> None:
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        """Write the model directory atomically (safetensors + JSON); `seqlens.load(path)` reads it back."""
        save_model(self, path)

    # --- recommend ---------------------------------------------------------------------------------
    def recommend(
        self,
        users: Sequence | None = None,
        histories: Mapping[str, Sequence] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        batch_size: int = 512,
        timestamps: Mapping[str, Sequence[int]] | None = None,
        user_attributes: Mapping[str, Mapping[str, str]] | None = None,
        context: Mapping[str, Mapping[str, str]] | None = None,
    ) -> pd.DataFrame:
        """Top-`k` next items for known `users` (their `fit` histories) or for ad-hoc `histories`.

        `histories` maps a user id (any label) to external item ids, oldest first; unknown items are
        ignored with a warning. `timestamps` maps some of those labels to their items' times (seconds,
        aligned), which a model that reads time uses (`SASRec(time="interval")` or `time_bias=True`; without
        them, unknown).
        `user_attributes` maps some labels to their attributes (column -> value), which a model that reads
        them uses (`SASRec(user_features=[...])`; a known user's are stored, others are unknown). `context` maps
        users (or labels) to the request's context (column -> value), which a model that reads it uses
        (`SASRec(context=[...])`; else unknown).
        Returns a DataFrame `user_id, item_id, score, rank` (rank 1 = best).
        """
        self._check_fitted()
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise DataError(f"k must be a positive integer, got {k!r}")
        labels, seqs = self.encoded_histories(users, histories, timestamps, user_attributes, context)
        k = min(int(k), self.n_items_)
        frames = []
        for rows, scores in scored_batches(self, seqs, exclude_seen, batch_size):
            top_scores, top_idx = scores.topk(k, dim=1)
            frames.append(self._table(labels[rows], top_scores.numpy(), top_idx.numpy()))
        return pd.concat(frames, ignore_index=True)

    def _table(self, labels: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> pd.DataFrame:
        k = scores.shape[1]
        keep = np.isfinite(scores).ravel()  # fewer than k candidates left after exclusion
        return pd.DataFrame(
            {
                USER: np.repeat(labels, k)[keep],
                ITEM: self.decode_items(np.maximum(idx.ravel(), 1))[keep],
                "score": scores.ravel()[keep].astype(np.float64),
                "rank": np.tile(np.arange(1, k + 1), len(labels))[keep],
            }
        )

    def encoded_histories(
        self,
        users: Sequence | None = None,
        histories: Mapping[str, Sequence] | None = None,
        timestamps: Mapping[str, Sequence[int]] | None = None,
        user_attributes: Mapping[str, Mapping[str, str]] | None = None,
        context: Mapping[str, Mapping[str, str]] | None = None,
    ) -> tuple[np.ndarray, Sequences]:
        """(labels, internal-index histories) of known `users` (their `fit` histories, with the times and user
        attributes stored with them) or of ad-hoc `histories` (external item ids, oldest first; unknown items
        dropped with a warning, and with them their `timestamps`, where given; `user_attributes` per label, where
        given), with each request's `context` per label: what scoring and explaining read."""
        if users is not None and histories is None:
            if timestamps is not None or user_attributes is not None:
                raise DataError(
                    "timestamps and user_attributes go with ad-hoc histories; known users' are stored with the model"
                )
            labels, seqs = self._known_users(users)
        elif histories is not None and users is None:
            labels, seqs = self._adhoc_histories(histories, timestamps or {})
            given = _by_label(user_attributes, labels, "user_attributes")
            seqs = replace(seqs, user_codes=self.attribute_codes_for([given.get(u) for u in labels]))
        else:
            raise DataError("pass exactly one of users=[...] or histories={user: [items...]}")
        asked = _by_label(context, labels, "context")
        return labels, replace(seqs, context_codes=self.context_codes_for([asked.get(u) for u in labels]))

    def _known_users(self, users: Sequence) -> tuple[np.ndarray, Sequences]:
        """(labels, stored histories) of users seen in `fit`; a DataError names the first unknown one."""
        if isinstance(users, (str, bytes)):
            raise DataError(f"users must be a list of user ids, got the string {users!r}")
        labels = np.array([str(u) for u in users], dtype=object)
        if len(labels) <= 32:  # a hash look-up per user: get_indexer costs ~0.5 ms, much of a one-user explanation
            index = self._user_index
            rows = np.array([index.get_loc(u) if u in index else -1 for u in labels], dtype=np.int64)
        else:
            rows = self._user_index.get_indexer(labels)
        if (rows < 0).any():
            unknown = labels[rows < 0][0]
            raise DataError(
                f"user {unknown!r} was not seen in fit ({(rows < 0).sum()} unknown); "
                "pass their items as histories={user: [items...]}"
            )
        return labels, self.histories_.subset(rows)

    def _adhoc_histories(
        self, histories: Mapping[str, Sequence], timestamps: Mapping[str, Sequence[int]]
    ) -> tuple[np.ndarray, Sequences]:
        if not isinstance(histories, Mapping) or not histories:
            raise DataError("histories must be a non-empty mapping {user: [item ids, oldest first]}")
        stray = [str(u) for u in timestamps if u not in histories]
        if stray:
            raise DataError(f"timestamps given for {stray[0]!r}, which histories does not hold")
        labels, seqs = [], []
        times: list[np.ndarray | None] = []
        for user, items in histories.items():
            if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
                raise DataError(f"history of user {user!r} must be a list of item ids, got {items!r}")
            items = [str(i) for i in items]
            if not items:
                raise DataError(f"history of user {user!r} is empty; give at least one item id")
            idx = self.encode_items(items)
            if (idx == 0).all():
                raise DataError(f"history of user {user!r}: none of its items is known to the model ({items[:5]!r})")
            if (idx == 0).any():
                unknown = [i for i, j in zip(items, idx) if j == 0]
                warnings.warn(
                    f"history of user {user!r}: ignored {len(unknown)} unknown item ids {unknown[:5]!r}", stacklevel=2
                )
            labels.append(str(user))
            seqs.append(idx[idx > 0])
            given = timestamps.get(user)
            if given is not None and len(given) != len(items):
                raise DataError(f"timestamps of {user!r}: {len(given)} given for a history of {len(items)} items")
            times.append(None if given is None else _seconds(given, user)[idx > 0])
        return np.array(labels, dtype=object), Sequences.from_lists(seqs, times)


def _by_label(given: Mapping | None, labels: np.ndarray, what: str) -> dict[str, Mapping[str, str]]:
    """`given` keyed by string labels (as `labels` are), refusing a label that `labels` lacks."""
    out = {str(label): values for label, values in (given or {}).items()}
    stray = sorted(set(out) - set(labels.tolist()))
    if stray:
        raise DataError(f"{what} given for {stray[0]!r}, which is not among the users or histories asked for")
    return out


def _seconds(given: Sequence[int], label: str) -> np.ndarray:
    """A history's timestamps as int64 seconds, refusing what is not a whole number of seconds in range."""
    values = np.asarray(given)
    if values.ndim != 1 or values.dtype.kind not in "iu" or (len(values) and np.abs(values).max() >= 2**62):
        raise DataError(f"timestamps of {label!r} must be integer seconds, got {list(given)[:5]!r}")
    return values.astype(np.int64)


def as_log(data: InteractionLog | pd.DataFrame) -> InteractionLog:
    """Accept a log or a DataFrame with `user_id`, `item_id` (and optionally `timestamp`) columns."""
    if isinstance(data, InteractionLog):
        return data
    if isinstance(data, pd.DataFrame):
        return InteractionLog.from_frame(data)
    raise DataError(f"expected an InteractionLog or a pandas DataFrame, got {type(data).__name__}")
