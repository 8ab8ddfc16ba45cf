"""What the neural next-item recommenders share: training with early stopping, scoring, saving.

A subclass says which network to build (`_build_net`) and which parameters it adds; the network maps
left-padded item indices [B, T] to hidden states [B, T, D] and scores them against its item embedding
table (`item_emb`, shared with the input), so every loss of `seqlens.nn.losses` applies to all of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from seqlens.data.log import InteractionLog
from seqlens.data.sequences import Sequences
from seqlens.errors import ArtifactError, DataError
from seqlens.eval.metrics import metrics_from_ranks
from seqlens.eval.protocol import rank_targets, targets_with_histories
from seqlens.nn.losses import LOSSES, next_item_loss
from seqlens.recommenders.base import Recommender, as_log
from seqlens.train.trainer import TrainConfig, Trainer, random_batches, seed_everything

#: micro-batches per batch, split by history length (see `fit`)
MICRO_BATCHES = 4

#: parameters every neural recommender validates as positive integers
POSITIVE_INTS = ("max_len", "dim", "layers", "epochs", "batch_size", "n_negatives")


class NextItemModel(Recommender):
    """Base estimator; subclasses set their parameters in `__init__` and implement `_build_net`."""

    def _build_net(self) -> nn.Module:
        raise NotImplementedError

    def _require_int(self, name: str, minimum: int = 1, what: str = "a positive integer") -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise DataError(f"{name} must be {what}, got {value!r}")

    def _validate_params(self) -> None:
        if self.loss not in LOSSES:
            raise DataError(f"loss={self.loss!r}; choose one of {', '.join(LOSSES)}")
        for name in POSITIVE_INTS:
            self._require_int(name)
        self._require_int("lr_patience", minimum=0, what="a non-negative integer (0: constant learning rate)")
        if not 0.0 <= self.dropout < 1.0:
            raise DataError(f"dropout must be in [0, 1), got {self.dropout!r}")

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
        if len(rows) == 0:
            raise DataError(
                f"{log.source}: every user has a single interaction; {type(self).__name__} needs sequences of 2 or more"
            )
        seed_everything(self.seed)  # the initial weights come from the seed too
        self.net_ = self._build_net()
        sampling = None
        if self.loss == "sampled":
            counts = np.bincount(train.flat, minlength=self.n_items_ + 1).astype(np.float64)
            sampling = torch.from_numpy(counts / counts.sum()).float()

        def loss_fn(batch: np.ndarray) -> Tensor:
            # A random batch is run as a few micro-batches of similar-length users, each padded only to
            # its own longest history: the same gradient as the whole batch, with a fraction of the
            # padding compute on short-history data (Beauty: mean length 9 of 50).
            batch = rows[batch]
            batch = batch[np.argsort(train.lengths[batch], kind="stable")]
            hidden, targets = [], []
            for part in np.array_split(batch, MICRO_BATCHES):
                if len(part) == 0:
                    continue
                x, y = (torch.from_numpy(a) for a in train.training_pair(part, self.max_len))
                h, _ = self.net_(x)
                hidden.append(h[y > 0])
                targets.append(y[y > 0])
            return next_item_loss(
                torch.cat(hidden), torch.cat(targets), self.net_.item_emb.weight, self.loss, self.n_negatives, sampling
            )

        validate = None
        if valid is not None:
            _, v_hist, v_targets = targets_with_histories(self, as_log(valid), log)

            def validate() -> dict[str, float]:
                ranks = rank_targets(self, v_hist, v_targets)
                return {k: float(v.mean()) for k, v in metrics_from_ranks(ranks, (10,)).items()}

        trainer = Trainer(
            self.net_, loss_fn, random_batches(len(rows), self.batch_size),
            TrainConfig(self.epochs, self.patience, self.batch_size, self.lr, self.weight_decay, self.seed,
                        lr_patience=self.lr_patience),
            validate, checkpoint_dir, self.progress,
        )  # fmt: skip
        self.history_ = trainer.fit(resume)
        self.net_.eval()
        if valid is not None:
            self._remember_histories(log.concat(valid))
        return self

    def score_histories(self, histories: Sequences, rows: np.ndarray) -> Tensor:
        seq = torch.from_numpy(histories.padded(rows, self.max_len))
        with torch.inference_mode():
            return self.net_.scores(self.net_.last_hidden(seq))

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
