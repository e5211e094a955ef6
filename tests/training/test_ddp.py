"""2-process DDP on the CPU (gloo, under torchrun) equals one process on the same global batch."""

from __future__ import annotations

import pytest
import torch

from training import engine

from .engine_fixtures import read_log, tiny_config, train_argv, write_tiny_yaml
from .torchrun import torchrun_c2f_train

STEPS = 3


# modality dropout and a token budget change each rank's encoder tokens (padding, cut to the
# longest row); the loss probe adds an all-reduce on the logged steps
SWITCHES = ("model.token_budget=6", "model.modality_dropout=0.5", "engine.loss_probe=true")


@pytest.mark.slow
@pytest.mark.parametrize("switches", [(), SWITCHES], ids=["default", "switches"])
def test_two_gloo_processes_match_one_process_with_accumulation(switches, tiny_store, tmp_path):
    # 2 processes x batch 2 x accum 2 == 1 process x batch 2 x accum 4: same samples, masks and lr
    # (global batch 8: 2 steps per epoch, so 3 steps also cross an epoch boundary)
    config = write_tiny_yaml(tmp_path / "ddp.yaml", "optim.batch_size=2", "optim.accum_iter=2", *switches)
    torchrun_c2f_train(*train_argv(config, tiny_store.path, tiny_store.images, tmp_path / "ddp", "--max-steps", STEPS))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        engine.train(
            tiny_config("optim.batch_size=2", "optim.accum_iter=4", *switches),
            tiny_store.path,
            tiny_store.images,
            tmp_path / "one",
            max_steps=STEPS,
        )
    finally:
        torch.set_num_threads(before)
    ddp, one = read_log(tmp_path / "ddp" / "log.jsonl"), read_log(tmp_path / "one" / "log.jsonl")
    assert [r["step"] for r in ddp] == [r["step"] for r in one] == list(range(1, STEPS + 1))
    for a, b in zip(ddp, one):
        assert a["lr"] == b["lr"]
        probed = sorted(k for k in b if "/" in k)  # the loss probe's values (with the switches)
        assert sorted(k for k in a if "/" in k) == probed and bool(probed) == bool(switches)
        for key in ("loss", "loss_rgb", "loss_semantic", "loss_instance", *probed):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
    pa = torch.load(tmp_path / "ddp" / "latest.pt", weights_only=True)["model"]
    pb = torch.load(tmp_path / "one" / "latest.pt", weights_only=True)["model"]
    for name in pa:
        torch.testing.assert_close(
            _without_key_bias(name, pa[name]), _without_key_bias(name, pb[name]), rtol=1e-5, atol=1e-5
        )


def _without_key_bias(name: str, value: torch.Tensor) -> torch.Tensor:
    """Zero the attention key biases. Softmax ignores a shift shared by all keys, so their true
    gradient is 0 and what autograd returns is rounding noise; AdamW divides it by its own RMS and
    turns a different summation order (2 ranks vs 4 micro-batches) into lr-sized differences."""
    value = value.clone()
    if name.endswith("qkv.bias"):
        third = value.shape[0] // 3
        value[third : 2 * third] = 0
    elif name.endswith(".kv.bias"):
        value[: value.shape[0] // 2] = 0
    return value
