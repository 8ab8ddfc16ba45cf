"""`device=`: 'auto' finds what this machine has; a device it lacks is named in a DataError."""

import pytest
import torch

from seqlens.errors import DataError
from seqlens.train.devices import resolve

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


def test_auto_is_a_gpu_when_there_is_one_else_the_cpu():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve("auto").type == expected
    assert resolve("cpu") == torch.device("cpu")


@no_cuda
def test_a_missing_gpu_is_named():
    with pytest.raises(DataError, match="sees no CUDA GPU; use 'cpu' or 'auto'"):
        resolve("cuda:0")


def test_names_torch_does_not_know_are_refused():
    with pytest.raises(DataError, match="not a device name torch knows"):
        resolve("gpu please")
    with pytest.raises(DataError, match="trains on 'cpu', 'cuda' or 'mps'"):
        resolve("meta")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_under_torchrun_each_process_takes_its_own_gpu(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve("cuda").index == 1 % torch.cuda.device_count()
