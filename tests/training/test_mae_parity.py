"""`mode="mae"` is MAE: a checkpoint in MAE's released parameter layout loads, and the encoder
output, the decoder's prediction and the loss equal an independent re-implementation of MAE's
pre-training forward pass (written below from the paper's description) in float64; the position
tables, the pixel normalisation and MAE's optimizer conventions match; a run starts from such a
checkpoint and a resumed run does not read it again."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from training import engine
from training.checkpoint import load_checkpoint
from training.config import OptimConfig, load_config
from training.errors import TrainingError
from training.losses import normalise_patches
from training.masking import num_keep
from training.masking.patch_masks import masks_from_order
from training.models import ModelConfig, build_model
from training.models.mae_checkpoint import load_mae_checkpoint
from training.optim import Schedule, build_optimizer
from training.pictures import picture_rgb

from .engine_fixtures import tiny_config

# decoder narrower than the encoder and with another head count, so no transpose goes unnoticed
CFG = ModelConfig.from_arch(
    "vit_tiny_cpu",
    mode="mae",
    img_size=32,
    patch_size=8,
    embed_dim=32,
    depth=2,
    num_heads=4,
    decoder_dim=16,
    decoder_depth=2,
    decoder_heads=2,
)


# ------------------------------------------------------- MAE, re-implemented from the paper
def mae_sincos(dim: int, grid: int) -> torch.Tensor:
    """MAE's fixed table [1, 1 + grid^2, dim]: a zero row for cls, then per patch (row-major)
    the column encoded in the first half of the channels and the row in the second; each
    half is [sin(pos * w_k), cos(pos * w_k)], w_k = 1 / 10000^(k / (dim / 4)), k < dim / 4."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angle = pos.flatten().double()[:, None] * omega
        return torch.cat([angle.sin(), angle.cos()], dim=1)

    table = torch.cat([encode(cols), encode(rows)], dim=1)
    return torch.cat([torch.zeros(1, dim, dtype=torch.float64), table])[None]


def mae_checkpoint(cfg: ModelConfig, seed: int = 0) -> dict:
    """{"model": state} with MAE's names and shapes, random weights (float32, as released)."""
    g = torch.Generator().manual_seed(seed)
    d, dd, p = cfg.embed_dim, cfg.decoder_dim, cfg.patch_size

    def rand(*shape: int, std: float) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    def linear(name: str, n_out: int, n_in: int) -> dict:
        return {f"{name}.weight": rand(n_out, n_in, std=n_in**-0.5), f"{name}.bias": rand(n_out, std=0.1)}

    def norm(name: str, dim: int) -> dict:
        return {f"{name}.weight": 1 + rand(dim, std=0.1), f"{name}.bias": rand(dim, std=0.1)}

    def blocks(name: str, depth: int, dim: int) -> dict:
        out, hidden = {}, int(dim * cfg.mlp_ratio)
        for i in range(depth):
            out |= norm(f"{name}.{i}.norm1", dim) | linear(f"{name}.{i}.attn.qkv", 3 * dim, dim)
            out |= linear(f"{name}.{i}.attn.proj", dim, dim) | norm(f"{name}.{i}.norm2", dim)
            out |= linear(f"{name}.{i}.mlp.fc1", hidden, dim) | linear(f"{name}.{i}.mlp.fc2", dim, hidden)
        return out

    state = {
        "cls_token": rand(1, 1, d, std=0.02),
        "pos_embed": mae_sincos(d, cfg.grid).float(),
        "patch_embed.proj.weight": rand(d, 3, p, p, std=(3 * p * p) ** -0.5),
        "patch_embed.proj.bias": rand(d, std=0.1),
    }
    state |= blocks("blocks", cfg.depth, d) | norm("norm", d)
    state |= {"mask_token": rand(1, 1, dd, std=0.02), "decoder_pos_embed": mae_sincos(dd, cfg.grid).float()}
    state |= linear("decoder_embed", dd, d) | blocks("decoder_blocks", cfg.decoder_depth, dd)
    state |= norm("decoder_norm", dd) | linear("decoder_pred", p * p * 3, dd)
    return {"model": state}


def layer_norm(x, w, name):
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-6) * w[f"{name}.weight"] + w[f"{name}.bias"]


def linear(x, w, name):
    return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]


def block(x, w, name, heads):
    """Pre-norm transformer block: x + MHSA(LN(x)), then x + MLP(LN(x)) with exact GELU."""
    n, t, d = x.shape
    qkv = linear(layer_norm(x, w, f"{name}.norm1"), w, f"{name}.attn.qkv")
    q, k, v = qkv.reshape(n, t, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // heads), dim=-1)
    x = x + linear((attn @ v).transpose(1, 2).reshape(n, t, d), w, f"{name}.attn.proj")
    h = linear(layer_norm(x, w, f"{name}.norm2"), w, f"{name}.mlp.fc1")
    h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
    return x + linear(h, w, f"{name}.mlp.fc2")


def take(x, ids):
    return torch.gather(x, 1, ids[..., None].expand(-1, -1, x.shape[-1]))


def mae_forward(w: dict, images: torch.Tensor, noise: torch.Tensor, cfg: ModelConfig):
    """MAE pre-training on images [N, 3, H, W] with per-patch noise [N, L] (lowest kept) ->
    latent [N, 1 + K, D], prediction [N, L, p*p*3], loss, masked ids [N, L - K]."""
    n, p, g, d = images.shape[0], cfg.patch_size, cfg.grid, cfg.embed_dim
    L, keep = g * g, int(g * g * (1 - cfg.mask_ratio))
    # the p x p, stride p convolution = one linear map of each patch's (channel, row, col) pixels
    cells = images.reshape(n, 3, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(n, L, -1)
    x = cells @ w["patch_embed.proj.weight"].reshape(d, -1).T + w["patch_embed.proj.bias"]
    x = x + w["pos_embed"][:, 1:]
    ids_shuffle = noise.argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    x = take(x, ids_shuffle[:, :keep])
    cls = (w["cls_token"] + w["pos_embed"][:, :1]).expand(n, -1, -1)
    x = torch.cat([cls, x], dim=1)
    for i in range(cfg.depth):
        x = block(x, w, f"blocks.{i}", cfg.num_heads)
    latent = layer_norm(x, w, "norm")

    y = linear(latent, w, "decoder_embed")
    grid = torch.cat([y[:, 1:], w["mask_token"].expand(n, L - keep, -1)], dim=1)
    y = torch.cat([y[:, :1], take(grid, ids_restore)], dim=1) + w["decoder_pos_embed"]
    for i in range(cfg.decoder_depth):
        y = block(y, w, f"decoder_blocks.{i}", cfg.decoder_heads)
    pred = linear(layer_norm(y, w, "decoder_norm"), w, "decoder_pred")[:, 1:]

    target = images.reshape(n, 3, g, p, g, p).permute(0, 2, 4, 3, 5, 1).reshape(n, L, -1)
    mean = target.mean(-1, keepdim=True)
    var = (target - mean).pow(2).sum(-1, keepdim=True) / (target.shape[-1] - 1)  # unbiased
    target = (target - mean) / torch.sqrt(var + 1e-6)
    mask = torch.cat([torch.zeros(n, keep), torch.ones(n, L - keep)], dim=1).double()
    mask = torch.gather(mask, 1, ids_restore)
    loss = ((pred - target).pow(2).mean(-1) * mask).sum() / mask.sum()
    return latent, pred, loss, ids_shuffle[:, keep:]


# ------------------------------------------------------------------------------ tests
@pytest.fixture
def mae_file(tmp_path):
    path = tmp_path / "mae_pretrain_full.pth"
    torch.save(mae_checkpoint(CFG), path)
    return path


def our_masks(noise: torch.Tensor, cfg: ModelConfig) -> dict:
    return {"rgb": masks_from_order(noise.argsort(dim=1), num_keep(cfg.num_patches, cfg.mask_ratio))}


def test_mae_mode_equals_maes_forward_pass_from_its_checkpoint_in_float64(mae_file):
    model = build_model(CFG, num_classes=1)
    report = load_mae_checkpoint(model, str(mae_file))
    assert report["unused"] == [] and report["fresh"] == []
    model = model.double().eval()
    w = {k: v.double() for k, v in torch.load(mae_file, weights_only=True)["model"].items()}
    g = torch.Generator().manual_seed(1)
    images = torch.randn(3, 3, 32, 32, generator=g, dtype=torch.float64) * 2 + 0.5
    noise = torch.rand(3, CFG.num_patches, generator=g, dtype=torch.float64)
    latent_ref, pred_ref, loss_ref, ids_masked = mae_forward(w, images, noise, CFG)

    batch, masks = {"image": images}, our_masks(noise, CFG)
    with torch.no_grad():
        latent = model.forward_encoder(batch, masks)
        preds = model.forward_decoder(latent, masks)
        loss = model.forward_loss(batch, preds, masks)["rgb"]
    close = dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(latent, latent_ref, **close)
    torch.testing.assert_close(preds["rgb"], take(pred_ref, ids_masked), **close)
    torch.testing.assert_close(loss.double(), loss_ref, **close)


def test_position_tables_are_maes():
    model = build_model(CFG, num_classes=1)
    close = dict(rtol=0, atol=1e-6)
    torch.testing.assert_close(model.pos_embed.double(), mae_sincos(CFG.embed_dim, CFG.grid), **close)
    torch.testing.assert_close(model.decoder_pos_embed.double(), mae_sincos(CFG.decoder_dim, CFG.grid)[:, 1:], **close)


def test_a_perfect_normalised_prediction_pictures_as_the_image():
    model = build_model(CFG, num_classes=1)
    images = torch.rand(2, 3, 32, 32) * 3
    masks = our_masks(torch.rand(2, CFG.num_patches), CFG)["rgb"]
    ids = masks.ids_masked()
    pred = normalise_patches(take(model.patchify(images), ids))
    torch.testing.assert_close(picture_rgb(model.cfg, {"image": images}, pred, ids), images, rtol=1e-5, atol=1e-5)


def test_c2fmae_takes_the_encoder_and_rgb_path_and_initialises_the_rest(mae_file):
    cfg = dataclasses.replace(CFG, mode="c2f")
    torch.manual_seed(0)
    fresh = build_model(cfg, num_classes=3)
    model = build_model(cfg, num_classes=3)
    model.load_state_dict(fresh.state_dict())
    report = load_mae_checkpoint(model, str(mae_file))
    mae = torch.load(mae_file, weights_only=True)["model"]
    ours = model.state_dict()
    for name in (
        "cls_token",
        "patch_embed.proj.weight",
        "blocks.1.mlp.fc2.weight",
        "norm.bias",
        "decoder_embed.weight",
    ):
        assert torch.equal(ours[name], mae[name]) and name in report["loaded"]
    assert torch.equal(ours["heads.rgb.weight"], mae["decoder_pred.weight"])
    unused, left = set(report["unused"]), report["fresh"]
    assert {"mask_token", "decoder_blocks.0.attn.qkv.weight", "decoder_norm.weight"} <= unused
    assert left and all(torch.equal(ours[k], fresh.state_dict()[k]) for k in left)
    assert any(k.startswith("stages.") for k in left) and "heads.semantic.weight" in left


def broken(mae_file, change) -> str:
    state = torch.load(mae_file, weights_only=True)
    change(state["model"])
    torch.save(state, mae_file)
    return str(mae_file)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.pop("decoder_pred.bias"), "missing 'decoder_pred.bias'"),
        (lambda s: s.update({"head.weight": torch.zeros(3, 32)}), "unexpected 'head.weight'"),
        (lambda s: s.update({"mask_token": torch.zeros(1, 1, 8)}), "'mask_token' has shape (1, 1, 8)"),
        (lambda s: s["decoder_pos_embed"].add_(1), "cls row"),
    ],
)
def test_an_mae_checkpoint_that_does_not_fit_is_one_line_naming_the_key(mae_file, change, message):
    with pytest.raises(TrainingError, match="model.init_from") as err:
        load_mae_checkpoint(build_model(CFG, num_classes=1), broken(mae_file, change))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_encoder_must_fit_in_c2fmae_too(mae_file):
    model = build_model(dataclasses.replace(CFG, mode="c2f", depth=3), num_classes=3)
    with pytest.raises(TrainingError, match="missing 'blocks.2."):
        load_mae_checkpoint(model, str(mae_file))


def test_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path):
    model = build_model(CFG, num_classes=1)
    with pytest.raises(TrainingError, match="no such file"):
        load_mae_checkpoint(model, str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="cannot read"):
        load_mae_checkpoint(model, str(tmp_path / "junk.pth"))


def test_a_run_checkpoint_is_refused_as_init(tmp_path):
    torch.save({"format": 1, "step": 3, "model": {}, "optimizer": {}, "config": {}}, tmp_path / "latest.pt")
    with pytest.raises(TrainingError, match="c2f-train checkpoint"):
        load_mae_checkpoint(build_model(CFG, num_classes=1), str(tmp_path / "latest.pt"))


def test_a_run_starts_from_the_mae_checkpoint_and_resuming_does_not_read_it(tiny_store, tmp_path):
    cfg = tiny_config("model.mode=mae").model
    path = tmp_path / "mae.pth"
    torch.save(mae_checkpoint(cfg, seed=3), path)
    # MAE's warmup runs step 0 at lr 0, so the weights after one step are the file's
    overrides = ["model.mode=mae", f"model.init_from={path}", "optim.warmup_from_zero=true"]
    run = tmp_path / "run"
    engine.train(tiny_config(*overrides), tiny_store.path, tiny_store.images, run, max_steps=1)
    state, _ = load_checkpoint(run)
    mae = torch.load(path, weights_only=True)["model"]
    assert torch.equal(state["model"]["blocks.1.attn.qkv.weight"], mae["blocks.1.attn.qkv.weight"])
    assert torch.equal(state["model"]["heads.rgb.bias"], mae["decoder_pred.bias"])
    path.unlink()
    summary = engine.train(tiny_config(*overrides), tiny_store.path, tiny_store.images, run, max_steps=2)
    assert summary["step"] == 2 and summary["steps_run"] == 1


# ------------------------------------------------ MAE's optimizer and init conventions
def test_mae_warmup_starts_at_lr_zero():
    s = Schedule(peak=1.0, floor=0.0, warmup_steps=10, total_steps=110, warmup_from_zero=True)
    assert [s.lr(k) for k in (0, 5, 10)] == pytest.approx([0.0, 0.5, 1.0])
    cfg = OptimConfig(warmup_epochs=2, epochs=4, warmup_from_zero=True)
    assert Schedule.from_config(cfg, world_size=1, steps_per_epoch=5).lr(0) == 0.0


def test_mae_decay_rule_decays_the_learned_tokens():
    model = build_model(CFG, num_classes=1)
    names = {id(p): n for n, p in model.named_parameters()}

    def groups(rule):
        opt = build_optimizer(model, OptimConfig(weight_decay=0.05, decay_rule=rule), world_size=1)
        return [{names[id(p)] for p in g["params"]} for g in opt.param_groups]

    (_, keep), (mae_decay, mae_keep) = groups("model"), groups("mae")
    assert {"cls_token", "mask_token"} <= keep and {"cls_token", "mask_token"} <= mae_decay
    assert mae_keep == {n for n, p in model.named_parameters() if p.ndim == 1}
    assert "pos_embed" not in mae_decay | mae_keep  # fixed tables are not optimised at all


def test_patch_bias_init_torch_keeps_pytorchs_default_range():
    bound = (3 * CFG.patch_size**2) ** -0.5
    torch.manual_seed(0)
    bias = build_model(dataclasses.replace(CFG, patch_bias_init="torch"), 1).patch_embed.proj.bias
    assert bias.abs().max() <= bound and bias.abs().max() > bound / 2
    assert torch.all(build_model(CFG, 1).patch_embed.proj.bias == 0)


def test_mae_configs_switch_on_maes_conventions():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "training" / "configs"
    for name in ("mae_vit_b16.yaml", "mae_tiny_cpu.yaml"):
        cfg = load_config(root / name)
        assert (cfg.model.mode, cfg.model.patch_bias_init) == ("mae", "torch")
        assert cfg.optim.warmup_from_zero and cfg.optim.decay_rule == "mae"
    c2f = load_config(root / "c2fmae_vit_b16_1600e.yaml")
    assert (c2f.model.patch_bias_init, c2f.optim.warmup_from_zero, c2f.optim.decay_rule) == ("zeros", False, "model")
