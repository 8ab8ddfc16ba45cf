"""What the neural next-item recommenders share: training with early stopping, scoring, saving.

A subclass says which network to build (`_build_net`) and which parameters it adds; the network maps
left-padded item indices [B, T] to hidden states [B, T, D] and scores them against its item embedding
table (`item_table()`, shared with the input), so every loss of `seqlens.nn.losses` applies to all of them.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from seqlens.data.codes import ValueCodes
from seqlens.data.log import InteractionLog
from seqlens.data.sequences import Sequences
from seqlens.errors import ArtifactError, DataError
from seqlens.eval.metrics import metrics_from_ranks
from seqlens.eval.protocol import rank_targets, targets_with_histories
from seqlens.nn.losses import next_item_loss
from seqlens.nn.next_item import NextItemNet
from seqlens.params import Schema
from seqlens.recommenders.base import Recommender, as_log
from seqlens.train import devices, distributed
from seqlens.train.trainer import TrainConfig, Trainer, random_batches, seed_everything

#: micro-batches per batch, split by history length (see `fit`)
MICRO_BATCHES = 4


class NextItemModel(Recommender):
    """Base estimator. A subclass declares `schema` (its network config and `TrainConfig`, whose `param` fields
    are its hyper-parameters: the constructor, its signature and docstring, and validation come from there)
    and implements `_build_net`."""

    schema: ClassVar[Schema]
    net_: NextItemNet
    max_len: int  # declared on every neural model's network config (the constructor sets it)

    def __init__(self, **params: Any) -> None:
        """Replaced in every subclass that declares `schema` by a keyword-only constructor built from it
        (this one only tells type checkers that the parameters are keywords)."""
        raise TypeError(f"{type(self).__name__} declares no `schema`: its hyper-parameters are unknown")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "schema" in cls.__dict__:
            cls.__init__ = _constructor(cls.schema)  # type: ignore[method-assign]
            cls.__doc__ = f"{inspect.cleandoc(cls.__doc__ or '')}\n\n{cls.schema.docstring()}"

    def _build_net(self) -> NextItemNet:
        raise NotImplementedError

    def _config(self, config: type) -> dict:
        """This estimator's values of the parameters `config` declares."""
        return self.schema.of(config, self.get_params())

    def _validate_params(self) -> None:
        self.schema.validate(self.get_params(), where=f"{type(self).__name__}: ")

    @classmethod
    def _legacy_params(cls) -> dict:
        return cls.schema.legacy_defaults()

    def fit(
        self,
        log: InteractionLog | pd.DataFrame,
        valid: InteractionLog | pd.DataFrame | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: str | Path | None = None,
    ) -> NextItemModel:
        """Train on each user's sequence (predicting every next item) with early stopping on `valid`.

        `valid` holds each user's held-out next interaction (see `seqlens.leave_one_out`); training stops
        after `patience` epochs without a better validation NDCG@10 and keeps the best epoch. Without
        `valid`, all `epochs` run. On Ctrl-C, a resumable checkpoint goes to `checkpoint_dir` and
        `fit(..., resume=checkpoint_dir)` continues. After fit, `recommend(users=...)` uses each user's
        training history followed by their validation interaction.
        """
        self._validate_params()
        log = self._setup(log)
        train = self.histories_
        rows = np.flatnonzero(train.lengths >= 2)
        events = self.event_context_codes(log.df)  # [len(log), columns]: each event's context, in `train.flat`'s order
        if events is not None and len(events) != len(train.flat):
            raise DataError(f"{log.source}: {len(train.flat)} training events hold items, {len(events)} have context")
        if len(rows) == 0:
            raise DataError(
                f"{log.source}: every user has a single interaction; {type(self).__name__} needs sequences of 2 or more"
            )
        cfg = TrainConfig(**self._config(TrainConfig))
        seed_everything(cfg.seed)  # the initial weights come from the seed too
        device = devices.resolve(cfg.device)
        self.net_ = self._build_net().to(device)
        with torch.no_grad():  # cold items (a feature model's) never occur: their id vectors stay zero
            self.net_.item_emb.weight[self.n_warm_ + 1 :] = 0
        sampling = None
        if cfg.loss == "sampled":
            counts = np.bincount(train.flat, minlength=self.n_warm_ + 1).astype(np.float64)
            sampling = torch.from_numpy(counts / counts.sum()).float().to(device)
        pinned = device.type == "cuda"  # page-locked batches copy to the GPU while the previous step runs
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")

        def loss_fn(batch: np.ndarray) -> tuple[Tensor, int]:
            # A random batch is run as a few micro-batches of similar-length users, each padded only to
            # its own longest history: the same gradient as the whole batch, with a fraction of the
            # padding compute on short-history data (Beauty: mean length 9 of 50).
            batch = rows[batch]
            batch = batch[np.argsort(train.lengths[batch], kind="stable")]
            hidden, targets, penalties = [], [], []
            for part in np.array_split(batch, MICRO_BATCHES):
                if len(part) == 0:
                    continue
                inputs, outputs = train.training_pair(part, self.max_len)
                x, y = torch.from_numpy(inputs), torch.from_numpy(outputs)
                when = self._times(train, part, drop_last=1)  # the inputs' timestamps, for a network that reads them
                # the targets' context (each position predicts the event whose context it reads), for a network that
                # reads context
                context = None if events is None else torch.from_numpy(train.of_targets(events, part, inputs))
                if device.type != "cpu":
                    x, y = (t.pin_memory().to(device, non_blocking=True) if pinned else t.to(device) for t in (x, y))
                    when = None if when is None else when.to(device)
                with autocast:
                    h, penalty = self.net_.training_forward(x, when)  # [b, T, D]
                    h = h + self._training_queries(train, part, context)  # the states every target is scored from
                hidden.append(h[y > 0].float())
                penalties.append(penalty.float())
                targets.append(y[y > 0])
            warm = self.net_.item_table()[: self.n_warm_ + 1]  # training ranks the items it can see, not cold ones
            h, y = torch.cat(hidden), torch.cat(targets)
            loss = next_item_loss(h, y, warm, cfg.loss, cfg.n_negatives, sampling)
            penalty = torch.stack(penalties).mean()  # the network's own penalty, a mean over the micro-batches
            return loss + self.net_.extra_loss(h, y, self.n_warm_) + penalty, len(y)

        validate = None
        if valid is not None:
            _, v_hist, v_targets = targets_with_histories(self, as_log(valid), log)

            def validate() -> dict[str, float]:  # in a process group, each rank ranks its share of the users
                mine = distributed.shard(len(v_targets))
                ranks = distributed.gathered(rank_targets(self, v_hist.subset(mine), v_targets[mine]), len(v_targets))
                return {k: float(v.mean()) for k, v in metrics_from_ranks(ranks, (10,)).items()}

        trainer = Trainer(
            self.net_, loss_fn, random_batches(len(rows), cfg.batch_size), cfg, validate, checkpoint_dir,
        )  # fmt: skip
        self.history_ = trainer.fit(resume)
        self.net_.to("cpu").eval()  # recommending, explaining and serving run on the CPU
        if valid is not None:
            self._remember_histories(log.concat(valid))
        return self

    def _training_queries(self, train: Sequences, rows: np.ndarray, context: Tensor | None) -> Tensor:
        """[b, T, D] (or a zero that broadcasts): what the users of `rows` of the training histories and `context`
        [b, T, columns], each target event's context codes, add to the states the targets are scored from."""
        out = self.net_.item_emb.weight.new_zeros(())
        users = self.query_vectors(train, rows)  # [b, D]: the users' attributes (training histories hold no context)
        if users is not None:
            out = out + users[:, None]
        if context is not None:
            out = out + self.net_.context_vector(context.to(out.device))
        return out

    def score_histories(self, histories: Sequences, rows: np.ndarray) -> Tensor:
        """Scores on the CPU, wherever the network is (during `fit`, on the training device)."""
        with torch.inference_mode():
            return self.net_.scores(self.last_hidden_of(histories, rows)).cpu()

    def last_hidden_of(self, histories: Sequences, rows: np.ndarray) -> Tensor:
        """[len(rows), hidden_dim]: the state each history's next item is scored from, on the network's device."""
        device = self.net_.item_emb.weight.device
        seq, times = self.padded_inputs(histories, rows)
        with torch.inference_mode():
            return self.with_query(
                self.net_.last_hidden(seq.to(device), None if times is None else times.to(device)), histories, rows
            )

    def query_vectors(self, histories: Sequences, rows: np.ndarray) -> Tensor | None:
        """[len(rows), D]: what is known of the requests for `rows` of `histories` besides the items (their users'
        attributes and their context, for a model that reads them) adds this to the state their next item is
        scored from; None when nothing is added (a model that reads neither, or histories without such codes:
        unknown, which adds nothing)."""
        device = self.net_.item_emb.weight.device
        parts = []
        if histories.user_codes is not None and getattr(self, "user_codes_", None) is not None:
            parts.append(self.net_.user_vector(torch.from_numpy(histories.user_codes[rows]).to(device)))
        if histories.context_codes is not None and getattr(self, "context_codes_", None) is not None:
            parts.append(self.net_.context_vector(torch.from_numpy(histories.context_codes[rows]).to(device)))
        return sum(parts[1:], parts[0]) if parts else None

    def with_query(self, states: Tensor, histories: Sequences, rows: np.ndarray) -> Tensor:
        """`states` [B, D] of `rows` of `histories` plus their `query_vectors`: every item score of a history is read
        from such a state."""
        vector = self.query_vectors(histories, rows)
        return states if vector is None else states + vector

    def user_codes_for(self, users: Sequence[str] | np.ndarray) -> np.ndarray | None:
        codes = getattr(self, "user_codes_", None)
        return None if codes is None else codes.for_users([str(u) for u in users])

    def attribute_codes_for(self, values: Sequence[Mapping[str, str] | None]) -> np.ndarray | None:
        if not hasattr(self, "user_codes_"):
            return super().attribute_codes_for(values)
        return self._coded(self.user_codes_, values, "user attribute")

    def context_codes_for(self, values: Sequence[Mapping[str, str] | None]) -> np.ndarray | None:
        if not hasattr(self, "context_codes_"):
            return super().context_codes_for(values)
        return self._coded(self.context_codes_, values, "context")

    @staticmethod
    def _coded(codes: ValueCodes, values: Sequence[Mapping[str, str] | None], what: str) -> np.ndarray:
        """`codes.of(values)`, with a warning naming the values training never saw (read as unknown)."""
        out, unknown = codes.of(values)
        if unknown:
            warnings.warn(
                f"{what} values training never saw read as unknown: "
                + "; ".join(f"{c}: {', '.join(map(repr, sorted(set(vs))[:5]))}" for c, vs in unknown.items()),
                stacklevel=5,  # the caller of recommend
            )
        return out

    def event_context_codes(self, events: pd.DataFrame) -> np.ndarray | None:
        codes = getattr(self, "context_codes_", None)
        if codes is None:
            return None
        missing = [c for c in codes.columns if c not in events.columns]
        if missing:
            warnings.warn(
                f"the events have no context column {missing[0]!r}: the model reads their context as unknown (read "
                f"the log with context=[{', '.join(map(repr, codes.columns))}])",
                stacklevel=2,
            )
        return codes.of_frame(events)

    def padded_inputs(self, histories: Sequences, rows: np.ndarray) -> tuple[Tensor, Tensor | None]:
        """What the network reads of `rows` of `histories`: their left-padded items [B, T] and, for a network that
        reads time, their timestamps [B, T] (None otherwise, and for histories without timestamps, such as ad-hoc
        ones: the network then takes every interval as unknown)."""
        return torch.from_numpy(histories.padded(rows, self.max_len)), self._times(histories, rows)

    def _times(self, histories: Sequences, rows: np.ndarray, drop_last: int = 0) -> Tensor | None:
        times = histories.padded_times(rows, self.max_len, drop_last) if self.net_.reads_time else None
        return None if times is None else torch.from_numpy(times)

    def _state(self) -> dict[str, Tensor]:
        return dict(self.net_.state_dict())

    def _load_state(self, tensors: dict[str, Tensor]) -> None:
        with torch.device("meta"):  # shapes only, no memory: a config that asks for gigabytes fails here
            expected = {k: tuple(v.shape) for k, v in self._build_net().state_dict().items()}
        found = {k: tuple(v.shape) for k, v in tensors.items()}
        differ = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
        if differ:
            k = differ[0]
            raise ArtifactError(
                f"the weights do not fit the configuration: {k} is {found.get(k, 'missing')} in model.safetensors, "
                f"the configuration needs {expected.get(k, 'no such tensor')}"
                + (f" ({len(differ) - 1} more differ)" if len(differ) > 1 else "")
            )
        self.net_ = self._build_net()
        self.net_.load_state_dict(tensors)
        self.net_.eval()


def _constructor(schema: Schema):
    """`__init__(self, *, <every parameter>=<its default>)`: stores each value unchanged (scikit-learn style;
    `fit` validates), so `type(m)(**m.get_params())` rebuilds an unfitted copy."""

    def __init__(self, **params):
        unknown = sorted(set(params) - set(schema.specs))
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword argument(s) {', '.join(unknown)}")
        for name, default in schema.defaults.items():
            setattr(self, name, params[name] if name in params else copy.copy(default))

    __init__.__signature__ = schema.signature()  # type: ignore[attr-defined]
    return __init__
