"""The training loop: early stopping with best-weight restore, Ctrl-C checkpoints, exact resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from seqlens.errors import ArtifactError
from seqlens.nn.dropout import Dropout
from seqlens.train import TrainConfig, Trainer, TrainingInterrupted, random_batches
from seqlens.train.checkpoint import STATE, TENSORS, load_checkpoint

N_EXAMPLES, BATCH = 40, 8  # five batches per epoch

_g = torch.Generator().manual_seed(0)
X = torch.randn(N_EXAMPLES, 3, generator=_g)
Y = X @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(N_EXAMPLES, 1, generator=_g)
X_VALID = torch.randn(10, 3, generator=_g)
Y_VALID = X_VALID @ torch.tensor([[1.0], [-2.0], [0.5]])


def tiny_module(seed=123) -> nn.Module:
    """A linear model behind our Dropout, so a resume must restore torch's RNG as well as numpy's."""
    torch.manual_seed(seed)
    return nn.Sequential(Dropout(0.3), nn.Linear(3, 1))


def state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def mse_loss(module):
    def loss_fn(batch):
        return (module(X[batch]) - Y[batch]).pow(2).mean(), len(batch)

    return loss_fn


def config(**kw):
    base = dict(epochs=6, patience=100, batch_size=BATCH, lr=0.05, seed=7, lr_patience=0, progress=False)
    return TrainConfig(**{**base, **kw})


def without_timings(history):
    return [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in history]


# --- early stopping -------------------------------------------------------------------------------
def test_early_stopping_after_patience_restores_best_weights():
    module = tiny_module()
    scores = iter([0.1, 0.3, 0.2, 0.25, 0.1, 0.9, 0.9, 0.9])
    seen = []

    def validate():
        assert not module.training  # validation runs in eval mode
        seen.append(state(module))
        return {"ndcg@10": next(scores)}

    trainer = Trainer(
        module,
        mse_loss(module),
        random_batches(N_EXAMPLES, BATCH),
        config(epochs=10, patience=3),
        validate,
    )
    history = trainer.fit()
    # best at epoch 2, then three epochs without improvement: stop after epoch 5
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5]
    assert len(seen) == 5
    assert [r["ndcg@10"] for r in history] == [0.1, 0.3, 0.2, 0.25, 0.1]
    assert [r["best"] for r in history] == [True, True, False, False, False]
    assert same_state(state(module), seen[1])
    assert not same_state(state(module), seen[-1])


def test_equal_score_is_not_an_improvement():
    module = tiny_module()
    scores = iter([0.5, 0.5, 0.5, 0.9])
    trainer = Trainer(
        module, mse_loss(module), random_batches(N_EXAMPLES, BATCH), config(patience=2),
        lambda: {"ndcg@10": next(scores)},
    )  # fmt: skip
    assert len(trainer.fit()) == 3


def test_without_validation_all_epochs_run_and_last_weights_stay():
    module = tiny_module()
    trainer = Trainer(
        module,
        mse_loss(module),
        random_batches(N_EXAMPLES, BATCH),
        config(epochs=4, patience=1),
    )
    history = trainer.fit()
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert history[-1]["loss"] < history[0]["loss"]  # it does learn
    assert not any(r["best"] for r in history)


def test_each_epoch_records_the_mean_gradient_norm_of_its_steps():
    torch.manual_seed(0)
    module = nn.Linear(3, 1)  # no dropout: each step's gradient is a function of the weights and the batch
    drawn = []

    def batches(rng):
        drawn.append(random_batches(N_EXAMPLES, BATCH)(rng))
        return drawn[-1]

    start = state(module)
    history = Trainer(module, mse_loss(module), batches, config(epochs=1, lr=1e-12)).fit()
    module.load_state_dict(start)  # lr 1e-12: the weights barely move, so the first epoch's norms are these
    expected = []
    for batch in drawn[0]:
        module.zero_grad()
        (module(X[batch]) - Y[batch]).pow(2).mean().backward()
        expected.append(torch.cat([p.grad.ravel() for p in module.parameters()]).norm().item())
    assert history[0]["grad_norm"] == pytest.approx(np.mean(expected), rel=1e-5)


def test_lr_halves_after_lr_patience_epochs_without_improvement():
    module = tiny_module()
    scores = iter([0.1, 0.3, 0.2, 0.2, 0.2, 0.2, 0.5, 0.4])
    trainer = Trainer(
        module, mse_loss(module), random_batches(N_EXAMPLES, BATCH), config(epochs=8, lr_patience=2),
        lambda: {"ndcg@10": next(scores)},
    )  # fmt: skip
    lrs = [r["lr"] for r in trainer.fit()]
    # bad epochs 3, 4 -> halve after 4; 5, 6 -> halve after 6; 7 improves; 8 is one bad epoch
    assert lrs == [0.05, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125, 0.0125]


# --- Ctrl-C and resume ----------------------------------------------------------------------------
def validate_for(module):
    def validate():
        with torch.no_grad():
            return {"ndcg@10": -float((module(X_VALID) - Y_VALID).pow(2).mean())}

    return validate


def run(module, loss_fn, checkpoint_dir=None, resume=None, **cfg):
    trainer = Trainer(
        module,
        loss_fn,
        random_batches(N_EXAMPLES, BATCH),
        config(**cfg),
        validate_for(module),
        checkpoint_dir,
    )
    return trainer.fit(resume)


def interrupting(module, at_call):
    """A loss that raises KeyboardInterrupt on its `at_call`-th call (0-based), as Ctrl-C would."""
    inner, calls = mse_loss(module), [0]

    def loss_fn(batch):
        calls[0] += 1
        if calls[0] - 1 == at_call:
            raise KeyboardInterrupt
        return inner(batch)

    return loss_fn


@pytest.mark.fault
def test_interrupt_writes_checkpoint_and_resume_is_exact(tmp_path):
    reference = tiny_module()
    ref_history = run(reference, mse_loss(reference))

    ckpt = tmp_path / "ckpt"
    interrupted = tiny_module()
    with pytest.raises(TrainingInterrupted) as e:
        run(interrupted, interrupting(interrupted, at_call=12), checkpoint_dir=ckpt)  # mid-epoch 3
    assert e.value.checkpoint == ckpt
    assert isinstance(e.value, KeyboardInterrupt)
    assert str(ckpt) in str(e.value)
    assert sorted(p.name for p in ckpt.iterdir()) == sorted([TENSORS, STATE])
    saved = json.loads((ckpt / STATE).read_text())
    assert saved["epoch"] == 2 and len(saved["history"]) == 2  # the last completed epoch

    resumed = tiny_module(seed=999)  # different initial weights: everything must come from the checkpoint
    history = run(resumed, mse_loss(resumed), checkpoint_dir=ckpt, resume=ckpt)
    assert without_timings(history) == without_timings(ref_history)
    assert same_state(state(resumed), state(reference))
    assert not ckpt.exists()  # a finished resume removes the checkpoint it came from


def test_resume_from_an_interrupt_in_the_first_epoch(tmp_path):
    reference = tiny_module()
    ref_history = run(reference, mse_loss(reference), epochs=3)
    ckpt = tmp_path / "ckpt"
    first = tiny_module()
    with pytest.raises(TrainingInterrupted):
        run(first, interrupting(first, at_call=2), checkpoint_dir=ckpt, epochs=3)
    assert json.loads((ckpt / STATE).read_text())["epoch"] == 0
    resumed = tiny_module(seed=5)
    history = run(resumed, mse_loss(resumed), resume=ckpt, epochs=3)
    assert without_timings(history) == without_timings(ref_history)
    assert same_state(state(resumed), state(reference))


def test_interrupt_without_checkpoint_dir_is_a_plain_keyboard_interrupt():
    module = tiny_module()
    with pytest.raises(KeyboardInterrupt) as e:
        run(module, interrupting(module, at_call=7))
    assert not isinstance(e.value, TrainingInterrupted)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(ArtifactError, match="missing"):
        load_checkpoint(tmp_path)


def test_checkpoint_holds_no_pickles(tmp_path):
    module = tiny_module()
    with pytest.raises(TrainingInterrupted):
        run(module, interrupting(module, at_call=6), checkpoint_dir=tmp_path / "c")
    tensors, saved = load_checkpoint(tmp_path / "c")
    assert "torch_rng" in tensors and any(k.startswith("opt.") for k in tensors)
    assert any(k.startswith("best.") for k in tensors)
    assert saved["config"]["seed"] == 7


# --- batches --------------------------------------------------------------------------------------
def test_batches_cover_every_example_once():
    batches = random_batches(53, 8)
    epoch1 = batches(np.random.default_rng(0))
    assert sorted(np.concatenate(epoch1).tolist()) == list(range(53))
    assert all(1 <= len(b) <= 8 for b in epoch1)
    again = batches(np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(epoch1, again))
    other = batches(np.random.default_rng(1))
    assert not all(len(a) == len(b) and np.array_equal(a, b) for a, b in zip(epoch1, other))


@pytest.fixture
def interrupted_checkpoint(tmp_path):
    ckpt = tmp_path / "ckpt"
    module = tiny_module()
    with pytest.raises(TrainingInterrupted):
        run(module, interrupting(module, at_call=12), checkpoint_dir=ckpt)
    return ckpt


@pytest.mark.fault
def test_resume_with_other_training_settings_is_refused_naming_them(interrupted_checkpoint):
    module = tiny_module()
    with pytest.raises(ArtifactError, match=r"lr=0\.05 in the checkpoint, 0\.5 now"):
        run(module, mse_loss(module), resume=interrupted_checkpoint, lr=0.5)
    history = run(module, mse_loss(module), resume=interrupted_checkpoint, epochs=8)  # a longer run is fine
    assert len(history) == 8


@pytest.mark.fault
def test_resume_into_a_network_of_other_shapes_is_refused(interrupted_checkpoint):
    torch.manual_seed(0)
    wider = nn.Sequential(Dropout(0.3), nn.Linear(3, 2))
    with pytest.raises(ArtifactError, match="differs from this model.s in 1.bias, 1.weight"):
        run(
            wider,
            lambda batch: (wider(torch.zeros(len(batch), 3)).pow(2).mean(), len(batch)),
            resume=interrupted_checkpoint,
        )


@pytest.mark.fault
def test_sigterm_stops_training_with_a_resumable_checkpoint(tmp_path):
    """Schedulers send SIGTERM: training stops as on Ctrl-C, and the run resumes exactly."""
    import os
    import signal

    reference = tiny_module()
    ref_history = run(reference, mse_loss(reference))
    ckpt = tmp_path / "ckpt"
    module, inner, calls = tiny_module(), None, [0]
    inner = mse_loss(module)

    def terminated_at_call_12(batch):
        calls[0] += 1
        if calls[0] == 13:
            os.kill(os.getpid(), signal.SIGTERM)
        return inner(batch)

    with pytest.raises(TrainingInterrupted):
        run(module, terminated_at_call_12, checkpoint_dir=ckpt)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone after training
    resumed = tiny_module(seed=7)
    assert without_timings(run(resumed, mse_loss(resumed), resume=ckpt)) == without_timings(ref_history)


@pytest.mark.fault
def test_a_full_disk_at_the_interrupt_leaves_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch):
    import errno

    from seqlens import atomic
    from seqlens.errors import ArtifactError

    ckpt = tmp_path / "ckpt"
    module = tiny_module()
    with pytest.raises(TrainingInterrupted):
        run(module, interrupting(module, at_call=5), checkpoint_dir=ckpt, epochs=4)
    before = {p.name: p.read_bytes() for p in ckpt.iterdir()}
    write_bytes = atomic.write_bytes

    def full_disk(path, data):
        write_bytes(path, data[: len(data) // 2])  # part of the file reaches the disk, then it is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "write_bytes", full_disk)
    module = tiny_module()
    with pytest.raises(ArtifactError, match="could not be written \\(No space left on device\\); a checkpoint already"):
        run(module, interrupting(module, at_call=12), checkpoint_dir=ckpt, epochs=4)
    assert {p.name: p.read_bytes() for p in ckpt.iterdir()} == before  # the earlier checkpoint, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no half-written directory left beside it
