"""Train one peer library's SASRec on a split prepared by benchmarks/peers.py and write its top-K lists.

Runs in the peers' own virtual environment (.venv-peers: RecTools, RecBole and their pins), never in
seqlens' one, and imports nothing from the seqlens package (its dependencies are not installed there).
The only seqlens file it uses is src/seqlens/eval/metrics.py, loaded on its own (numpy and torch only),
so that RecTools' early stopping watches the same validation NDCG@10 (pessimistic ties, seen items
excluded) as ours.

Input folder (written by the driver): train.csv, valid.csv, test.csv with columns user_id, item_id,
order (a global position that follows seqlens' within-user order; used as each library's timestamp, so
every library sees exactly the same sequences and the same leave-one-out targets) and config.json.
Output folder: recs.csv (user_id, item_id, rank for every test user, rank 1 = best, seen items
excluded, full ranking over the items in the training part) and result.json (per-epoch times and
validation scores, totals, the settings used and the ones the library cannot match).

Usage: .venv-peers/bin/python -m benchmarks.peers_worker rectools|recbole DATA_DIR OUT_DIR
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

METRICS_PY = Path(__file__).resolve().parents[1] / "src" / "seqlens" / "eval" / "metrics.py"


def seqlens_metrics():
    """seqlens.eval.metrics as a standalone module (importing the package would need its dependencies)."""
    spec = importlib.util.spec_from_file_location("seqlens_eval_metrics", METRICS_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_split(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    parts = [
        pd.read_csv(folder / f"{name}.csv", dtype={"user_id": str, "item_id": str, "order": np.int64})
        for name in ("train", "valid", "test")
    ]
    return parts[0], parts[1], parts[2]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def log(msg: str) -> None:
    print(f"[worker] {msg}", flush=True)


class TimeCap:
    """The optional wall-clock cap on a library's training (config `max_minutes`), checked between epochs."""

    def __init__(self, minutes: float | None):
        self.minutes = minutes
        self.start = time.perf_counter()
        self.hit = False

    def reached(self) -> bool:
        if self.minutes and time.perf_counter() - self.start > 60 * self.minutes:
            if not self.hit:
                log(f"time cap of {self.minutes:g} minutes reached: no further epochs")
            self.hit = True
        return self.hit


class TimeUp(Exception):
    """Raised between RecBole epochs once the time cap is reached (RecBole has no stop hook)."""


def summarise(epochs: list[dict], best_epoch: int | None, fit_seconds: float, cap: TimeCap) -> dict:
    train_s = [e["train_seconds"] for e in epochs]
    to_best = sum(
        e["train_seconds"] + e.get("valid_seconds", 0.0) for e in epochs if best_epoch and e["epoch"] <= best_epoch
    )
    return {
        "epochs_run": len(epochs),
        "best_epoch": best_epoch,
        "seconds_per_epoch_median": float(np.median(train_s)) if train_s else None,
        "wall_seconds_to_best": to_best if best_epoch else None,
        "wall_seconds_total_fit": fit_seconds,
        "time_cap_minutes": cap.minutes,
        "stopped_by_time_cap": cap.hit,
        "history": epochs,
    }


# --- RecTools ------------------------------------------------------------------------------------


def run_rectools(cfg: dict, train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, out: Path):
    import pytorch_lightning as pl
    import rectools
    from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
    from rectools import Columns
    from rectools.dataset import Dataset
    from rectools.models import SASRecModel
    from rectools.models.nn.item_net import IdEmbeddingsItemNet

    metrics = seqlens_metrics()
    k = cfg["k"]

    def frame(df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                Columns.User: df["user_id"],
                Columns.Item: df["item_id"],
                Columns.Weight: 1.0,
                Columns.Datetime: pd.to_datetime(df["order"], unit="s"),
            }
        )

    history = pd.concat([frame(train), frame(valid)], ignore_index=True)  # what test users are scored after
    valid_users = set(valid["user_id"])

    def last_per_user(interactions: pd.DataFrame) -> np.ndarray:
        """The validation mask: each validation user's last interaction (order is unique per row)."""
        last = interactions.groupby(Columns.User)[Columns.Datetime].transform("max")
        return ((interactions[Columns.Datetime] == last) & interactions[Columns.User].isin(valid_users)).to_numpy()

    epochs: dict[int, dict] = {}
    cap = TimeCap(cfg.get("max_minutes"))

    class Clock(Callback):
        """Seconds of training and of validation per epoch, and the validation NDCG@10 with seqlens' metric code."""

        def on_train_epoch_start(self, trainer, module):
            self.t0, self.valid = time.perf_counter(), 0.0

        def on_validation_epoch_start(self, trainer, module):
            self.v0, self.ranks = time.perf_counter(), []

        def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
            logits = outputs["logits"].detach().float()
            if logits.dim() == 1:  # a batch of one is squeezed by the library
                logits = logits[None]
            extra = getattr(module.data_preparator, "n_item_extra_tokens", 1)
            logits[:, :extra] = float("-inf")  # padding token is not an item
            scores = metrics.exclude(logits, batch["x"].long())  # seen items of the input window
            self.ranks.append(metrics.target_ranks(scores, batch["y"][:, -1].long()).numpy())

        def on_validation_epoch_end(self, trainer, module):
            if trainer.sanity_checking:
                return
            ranks = np.concatenate(self.ranks)
            ndcg = float(metrics.metrics_from_ranks(ranks, (10,))["ndcg@10"].mean())
            module.log("val_ndcg10", ndcg)
            self.valid += time.perf_counter() - self.v0
            loss = trainer.callback_metrics.get("val_loss")
            rec = epochs.setdefault(trainer.current_epoch + 1, {"epoch": trainer.current_epoch + 1})
            rec.update(valid_ndcg10=ndcg, valid_loss=None if loss is None else float(loss), valid_seconds=self.valid)
            log(f"epoch {rec['epoch']}: valid NDCG@10 {ndcg:.4f} ({self.valid:.1f}s)")

        def on_train_epoch_end(self, trainer, module):
            total = time.perf_counter() - self.t0
            rec = epochs.setdefault(trainer.current_epoch + 1, {"epoch": trainer.current_epoch + 1})
            loss = trainer.callback_metrics.get("train_loss")
            rec.update(train_seconds=total - rec.get("valid_seconds", 0.0), loss=None if loss is None else float(loss))
            log(f"epoch {rec['epoch']}: train {rec['train_seconds']:.1f}s loss {rec['loss']}")
            if cap.reached():
                trainer.should_stop = True

    def get_trainer():
        return pl.Trainer(
            max_epochs=cfg["epochs"],
            min_epochs=1,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=True,
            num_sanity_val_steps=0,
            deterministic=False,
            callbacks=[
                Clock(),
                EarlyStopping(monitor="val_ndcg10", mode="max", patience=cfg["patience"]),
                ModelCheckpoint(dirpath=out / "ckpt", monitor="val_ndcg10", mode="max", save_top_k=1, filename="best"),
            ],
        )

    pl.seed_everything(cfg["seed"], workers=True)
    model = SASRecModel(
        n_blocks=cfg["layers"],
        n_heads=cfg["heads"],
        n_factors=cfg["dim"],
        dropout_rate=cfg["dropout"],
        session_max_len=cfg["max_len"],
        loss="softmax",
        lr=cfg["lr"],
        batch_size=cfg["batch_size"],
        epochs=cfg["epochs"],
        use_key_padding_mask=True,
        item_net_block_types=(IdEmbeddingsItemNet,),
        get_val_mask_func=last_per_user,
        get_trainer_func=get_trainer,
        recommend_torch_device="cpu",
        train_min_user_interactions=2,
        pos_encoding_kwargs={"use_scale_factor": True},
    )
    dataset = Dataset.construct(history)
    start = time.perf_counter()
    model.fit(dataset)
    fit_seconds = time.perf_counter() - start
    best_epoch = None
    best_path = model.fit_trainer.checkpoint_callback.best_model_path  # fit runs a deep copy of the trainer
    if best_path:
        model.load_weights_from_checkpoint(best_path)
        # ModelCheckpoint keeps the first of equal scores, and so does max()
        validated = [e for e in epochs.values() if "valid_ndcg10" in e]
        best_epoch = max(validated, key=lambda e: e["valid_ndcg10"])["epoch"]
    t0 = time.perf_counter()
    recs = model.recommend(users=test["user_id"].unique(), dataset=dataset, k=k, filter_viewed=True)
    recommend_seconds = time.perf_counter() - t0
    recs = recs.rename(columns={Columns.User: "user_id", Columns.Item: "item_id", Columns.Rank: "rank"})
    result = summarise([epochs[i] for i in sorted(epochs)], best_epoch, fit_seconds, cap)
    result.update(
        library=f"RecTools {rectools.__version__}",
        model="rectools.models.SASRecModel",
        recommend_seconds=recommend_seconds,
        settings={
            "n_blocks": cfg["layers"],
            "n_heads": cfg["heads"],
            "n_factors": cfg["dim"],
            "dropout_rate": cfg["dropout"],
            "session_max_len": cfg["max_len"],
            "loss": "softmax",
            "lr": cfg["lr"],
            "batch_size": cfg["batch_size"],
            "epochs": cfg["epochs"],
            "early_stopping_patience": cfg["patience"],
            "use_key_padding_mask": True,
            "item_net_block_types": ["IdEmbeddingsItemNet"],
            "train_min_user_interactions": 2,
            "pos_encoding_kwargs": {"use_scale_factor": True},
        },
        differences=[
            "feed-forward activation ReLU (ours GELU); width = n_factors like ours",
            (
                "the original SASRec block (only the attention query is layer-normed and the residuals add the "
                "normalised inputs); ours is a standard pre-norm block"
            ),
            (
                "early stopping: on validation NDCG@10 computed by seqlens' metric code from RecTools' validation logits "
                "(a Lightning callback; RecTools itself only logs the validation loss); seen items excluded are those of "
                "the model's input window (the last max_len items), not the whole history"
            ),
            "the best epoch's weights are restored from a Lightning checkpoint before recommending",
        ],
    )
    return result, recs[["user_id", "item_id", "rank"]]


# --- RecBole -------------------------------------------------------------------------------------


def run_recbole(cfg: dict, train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, out: Path):
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_logger, init_seed

    k = cfg["k"]
    data_dir = out / "recbole_data"
    (data_dir / "peers").mkdir(parents=True, exist_ok=True)
    everything = pd.concat([train, valid, test], ignore_index=True).sort_values("order", kind="stable")
    everything.rename(
        columns={"user_id": "user_id:token", "item_id": "item_id:token", "order": "timestamp:float"}
    ).to_csv(data_dir / "peers" / "peers.inter", sep="\t", index=False)
    settings = {
        "data_path": str(data_dir),
        "checkpoint_dir": str(out / "ckpt"),
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        "MAX_ITEM_LIST_LENGTH": cfg["max_len"],
        "n_layers": cfg["layers"],
        "n_heads": cfg["heads"],
        "hidden_size": cfg["dim"],
        "inner_size": cfg["ffn_dim"],
        "hidden_dropout_prob": cfg["dropout"],
        "attn_dropout_prob": cfg["dropout"],
        "hidden_act": "gelu",
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "epochs": cfg["epochs"],
        "train_batch_size": cfg["batch_size"],
        "learning_rate": cfg["lr"],
        "learner": "adam",
        "stopping_step": cfg["patience"],
        "eval_step": 1,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["NDCG", "Recall"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "eval_batch_size": 1024,
        "use_gpu": False,
        "gpu_id": "",
        "seed": cfg["seed"],
        "reproducibility": True,
        "show_progress": False,
        "log_wandb": False,
        "worker": 0,
        "save_dataset": False,
        "save_dataloaders": False,
    }
    sys.argv = sys.argv[:1]  # RecBole's Config also parses the command line; ours is not for it
    config = Config(model="SASRec", dataset="peers", config_dict=settings)
    init_seed(config["seed"], config["reproducibility"])
    torch.set_num_threads(cfg["threads"])  # RecBole's seeding may not touch it; keep ours
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = SASRec(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)

    epochs: list[dict] = []
    train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

    cap = TimeCap(cfg.get("max_minutes"))

    def timed_train(*args, **kwargs):
        if cap.reached():
            raise TimeUp
        t0 = time.perf_counter()
        loss = train_epoch(*args, **kwargs)
        seconds = time.perf_counter() - t0
        epochs.append({"epoch": len(epochs) + 1, "train_seconds": seconds, "loss_sum_over_batches": float(loss)})
        log(f"epoch {len(epochs)}: train {epochs[-1]['train_seconds']:.1f}s loss {float(loss):.4f}")
        return loss

    def timed_valid(*args, **kwargs):
        t0 = time.perf_counter()
        score, result = valid_epoch(*args, **kwargs)
        epochs[-1].update(valid_seconds=time.perf_counter() - t0, valid_ndcg10=float(score))
        log(f"epoch {len(epochs)}: valid NDCG@10 {float(score):.4f} ({epochs[-1]['valid_seconds']:.1f}s)")
        return score, result

    trainer._train_epoch, trainer._valid_epoch = timed_train, timed_valid
    start = time.perf_counter()
    try:
        trainer.fit(train_data, valid_data, saved=True, show_progress=False, verbose=False)
    except TimeUp:
        pass  # the best epoch so far is saved already
    fit_seconds = time.perf_counter() - start
    # the best epoch's weights (RecBole saves them when the validation score improves)
    state = torch.load(trainer.saved_model_file, map_location="cpu", weights_only=False)
    model.load_state_dict(state["state_dict"])
    model.load_other_parameter(state.get("other_parameter"))
    model.eval()
    best_epoch = max(epochs, key=lambda e: e.get("valid_ndcg10", float("-inf")))["epoch"]

    # Top-K for every test user: RecBole's own full-sort evaluation of sequential models does not exclude seen
    # items, so score with the model and exclude the whole train + validation history here; items that occur
    # only in validation/test targets are in RecBole's vocabulary but were never trained: not candidates.
    t0 = time.perf_counter()
    uid, iid = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
    n_items = dataset.item_num
    candidate = torch.zeros(n_items, dtype=torch.bool)
    candidate[torch.from_numpy(dataset.token2id(iid, train["item_id"].unique()))] = True
    seen_df = pd.concat([train, valid], ignore_index=True)
    seen_users = dataset.token2id(uid, seen_df["user_id"].to_numpy())
    seen_items = dataset.token2id(iid, seen_df["item_id"].to_numpy())
    seen = pd.Series(seen_items).groupby(seen_users).agg(list).to_dict()
    users, tops = [], []
    with torch.no_grad():
        for batch in test_data:
            interaction = batch[0].to(config["device"])
            scores = model.full_sort_predict(interaction).view(-1, n_items).cpu().float()
            scores[:, ~candidate] = float("-inf")
            batch_users = interaction[uid].cpu().numpy()
            rows = np.concatenate([np.full(len(seen.get(u, [])), r) for r, u in enumerate(batch_users)])
            cols = np.concatenate([seen.get(u, []) for u in batch_users])
            scores[torch.from_numpy(rows.astype(np.int64)), torch.from_numpy(cols.astype(np.int64))] = float("-inf")
            values, idx = scores.topk(k, dim=1)
            for r, u in enumerate(batch_users):
                keep = torch.isfinite(values[r])
                users.append(np.repeat(u, int(keep.sum())))
                tops.append(idx[r][keep].numpy())
    recommend_seconds = time.perf_counter() - t0
    user_col = np.concatenate(users)
    item_col = np.concatenate(tops)
    recs = pd.DataFrame({"user_id": dataset.id2token(uid, user_col), "item_id": dataset.id2token(iid, item_col)})
    recs["rank"] = recs.groupby("user_id", sort=False).cumcount() + 1
    result = summarise(epochs, best_epoch, fit_seconds, cap)
    result.update(
        library=f"RecBole {recbole.__version__}",
        model="recbole.model.sequential_recommender.SASRec",
        recommend_seconds=recommend_seconds,
        settings={
            key: settings[key]
            for key in (
                "MAX_ITEM_LIST_LENGTH",
                "n_layers",
                "n_heads",
                "hidden_size",
                "inner_size",
                "hidden_dropout_prob",
                "attn_dropout_prob",
                "hidden_act",
                "loss_type",
                "epochs",
                "train_batch_size",
                "learning_rate",
                "learner",
                "stopping_step",
                "valid_metric",
                "eval_args",
            )
        },
        differences=[
            (
                "training samples are prefixes (one target each, RecBole's sequence augmentation), so a batch of "
                f"{cfg['batch_size']} is {cfg['batch_size']} prefixes, not {cfg['batch_size']} users with a target at every "
                "position as in ours: an epoch has many more, smaller optimiser steps"
            ),
            "Adam with torch's default betas (0.9, 0.999); ours uses (0.9, 0.98); RecBole has no setting for them",
            (
                "post-layer-norm transformer blocks (BERT style) and normal(0, 0.02) initialisation; ours is pre-norm "
                "with Xavier initialisation"
            ),
            (
                "early stopping on RecBole's own validation NDCG@10 (full ranking, but RecBole does not exclude seen "
                "items for sequential models)"
            ),
            (
                "recommendations exclude the whole train + validation history and are drawn from the items of the "
                "training part only (done here from the model's full scores, not by RecBole)"
            ),
        ],
    )
    return result, recs


RUNNERS = {"rectools": run_rectools, "recbole": run_recbole}


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[0] not in RUNNERS:
        raise SystemExit(__doc__)
    # the peers' pandas and torch deprecation notices would bury a real error in the report
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    peer, data, out = argv[0], Path(argv[1]).resolve(), Path(argv[2]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)  # RecBole writes log/ and log_tensorboard/ into the working directory
    cfg = json.loads((data / "config.json").read_text())
    torch.set_num_threads(cfg["threads"])
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # RecBole reloads its checkpoints with torch.load
    train, valid, test = read_split(data)
    log(
        f"{peer}: {len(train)} train, {len(valid)} valid, {len(test)} test interactions; "
        f"{cfg['epochs']} epochs at most, {cfg['threads']} torch threads"
    )
    start = time.perf_counter()
    result, recs = RUNNERS[peer](cfg, train, valid, test, out)
    result["wall_seconds_total"] = time.perf_counter() - start
    result["machine"] = f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    recs.to_csv(out / "recs.csv", index=False)
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    log(f"{peer}: done in {result['wall_seconds_total']:.1f}s, {len(recs)} recommendations")


if __name__ == "__main__":
    main(sys.argv[1:])
