"""The model card (README.md) of an exported encoder, built with huggingface_hub's ModelCard and
ModelCardData: the Hub's YAML metadata (library timm, tags, pipeline, licence, datasets), then
what the encoder is, how to load it, its normalisation, how it was trained and what it is not.

Everything in it comes from the export's config.json and the run's training config, except the
licence and the dataset id, which export takes as options (nothing names a local path).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from huggingface_hub import ModelCard, ModelCardData

from plumbing.hub_licenses import HUB_LICENSES
from training.config import TrainConfig, load_config, to_dict
from training.errors import TrainingError

PAPER = "https://arxiv.org/abs/2603.09955"
TAGS = ["image-feature-extraction", "timm", "c2fmae", "masked-image-modeling"]
PIPELINE = "image-feature-extraction"
# the packaged preset each mode's ViT-B/16 recipe is (the paper's for c2f)
PRESETS = {"c2f": "c2fmae_vit_b16_1600e", "mae": "mae_vit_b16", "parallel": "parallel_vit_b16"}
# settings that are not the recipe: names, where the weights start, hardware and logging
NOT_RECIPE = ("model.arch", "model.timm_model", "optim.batch_size", "optim.accum_iter")
RECIPE_SECTIONS = ("model", "curriculum", "optim")
RECIPE_DATA = ("img_size", "scale", "ratio", "hflip", "mean", "std")
MODE_TEXT = {
    "c2f": "C2FMAE (coarse-to-fine masked autoencoder): the encoder sees the visible patches of the "
    "image and of its semantic and instance pseudo-masks; a cascaded decoder reconstructs semantics, "
    "then instances, then pixels, under a semantic -> instance -> random masking curriculum",
    "parallel": "the parallel-decoder ablation of C2FMAE: as C2FMAE, but each decoder stage sees the "
    "encoder's output only (no cascade)",
    "mae": "plain MAE (RGB only, random masking, MAE's decoder), the baseline of C2FMAE",
}
_DATASET_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")  # NAME or OWNER/NAME


@dataclass(frozen=True)
class CardInfo:
    """What the card says beyond config.json: the run's training config, and the two options."""

    train: TrainConfig
    license: str | None = None
    dataset: str | None = None


def check_license(text: str | None) -> str | None:
    """`--license`: a licence id the Hub accepts (plumbing.hub_licenses, lower-cased) or None."""
    if text is None:
        return None
    lid = text.strip().lower()
    if lid == "other":
        raise TrainingError("--license other needs a licence name and link: give a Hub licence id, or edit README.md")
    if lid not in HUB_LICENSES:
        raise TrainingError(
            f"--license {text!r} is not a licence id the Hugging Face Hub accepts (e.g. apache-2.0, cc-by-nc-4.0)"
        )
    return lid


def check_dataset(text: str | None) -> str | None:
    """`--dataset`: a Hub dataset id (NAME or OWNER/NAME) or None; a path or URL is refused."""
    if text is not None and (not _DATASET_ID.match(text) or ".." in text):
        raise TrainingError(
            f"--dataset {text!r}: give a Hugging Face Hub dataset id (NAME or OWNER/NAME), not a path or URL"
        )
    return text


def render_card(config: dict, info: CardInfo) -> str:
    """README.md text for the export whose config.json is `config`; reads back with ModelCard."""
    data = ModelCardData(
        library_name="timm",
        license=info.license,
        datasets=[info.dataset] if info.dataset else None,
        pipeline_tag=PIPELINE,
        tags=TAGS,
    )
    body = [*_about(config, info), *_use(config), *_training(config, info), *_limits(config, info)]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n"))


def _about(config: dict, info: CardInfo) -> list[str]:
    prov, args = config["c2fmae"], config["model_args"]
    size = config["pretrained_cfg"]["input_size"][-1]
    return [
        f"# c2fmae encoder: {prov['run']}",
        "",
        f"A ViT encoder (timm architecture `{config['architecture']}` with patch {args['patch_size']}, width "
        f"{args['embed_dim']}, depth {args['depth']}, {args['num_heads']} heads, {size}x{size} input) pre-trained "
        f"for {prov['step']} optimizer steps with {MODE_TEXT[info.train.model.mode]} "
        f"([paper]({PAPER})). Weights: `model.safetensors`, timm's names, no head.",
        "",
    ]


def _use(config: dict) -> list[str]:
    pre = config["pretrained_cfg"]
    size = pre["input_size"][-1]
    return [
        "## Use",
        "",
        "```python",
        "import timm",
        'model = timm.create_model("hf-hub:USER/REPO", pretrained=True)  # this repository on the Hub',
        'model = timm.create_model("local-dir:DIR", pretrained=True)  # or this folder, downloaded',
        "transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))",
        "features = model.forward_features(transform(image)[None])  # [1, 1 + patches, width]; model(x): cls token",
        "```",
        "",
        "`num_classes=N` in `create_model` adds a new, untrained head for fine-tuning.",
        "",
        "## Normalisation",
        "",
        f"Input {size}x{size} RGB in [0, 1], normalised with mean {_numbers(pre['mean'])} and std "
        f"{_numbers(pre['std'])} (the pre-training's). For evaluation, resize the short side to "
        f"{round(size / pre['crop_pct'])} ({pre['interpolation']}) and crop the centre {size}x{size} "
        "(MAE's evaluation transform). All of it is `pretrained_cfg` in `config.json`, so "
        "`timm.data.resolve_data_config` returns it.",
        "",
    ]


def _training(config: dict, info: CardInfo) -> list[str]:
    m, o, c = info.train.model, info.train.optim, info.train.curriculum
    prov = config["c2fmae"]
    handovers = f", hand-overs at t = {_numbers(c.boundaries)}" if c.shape != "constant" else ""
    if m.mode == "mae":
        decoder = f"MAE decoder: width {m.decoder_dim}, depth {m.decoder_depth}, {m.decoder_heads} heads"
    else:
        decoder = f"3 decoder stages of {m.stage_depth} block(s), width {m.decoder_dim}, {m.decoder_heads} heads"
    return [
        "## Pre-training",
        "",
        f"- Mode `{m.mode}`, {prov['step']} optimizer steps (checkpoint `{prov['checkpoint']}`).",
        f"- Mask ratio {m.mask_ratio}, {'normalised' if m.norm_pix_loss else 'raw'}-pixel targets; {decoder}.",
        f"- Curriculum: {c.shape}{handovers}.",
        f"- AdamW: base lr {o.blr} (lr = blr x effective batch / 256), weight decay {o.weight_decay}, "
        f"warm-up {o.warmup_epochs:g} of {o.epochs} scheduled epochs; per device batch {o.batch_size} x "
        f"{o.accum_iter} accumulation (the number of devices is not recorded).",
        f"- Data: {f'`{info.dataset}`' if info.dataset else 'not recorded (`c2f-train export --dataset`)'}.",
        f"- Recipe: {_recipe(info.train)}",
        "",
        "Trained with c2fmae's `c2f-train`; how, and the choices where the paper is silent: "
        "`docs/training.md` in the c2fmae source. Provenance (run name, checkpoint, step, format "
        "version) is under `c2fmae` in `config.json`.",
        "",
    ]


def _limits(config: dict, info: CardInfo) -> list[str]:
    licence = f"`{info.license}`" if info.license else "not stated at export (`--license`)"
    return [
        "## Limitations",
        "",
        "- Pre-trained only: self-supervised features, no fine-tuned classifier or segmentation head. "
        "Probe or fine-tune it first (`c2f-train eval --protocol knn linear finetune dense`).",
        "- No downstream number is claimed here. The paper's results come from its full recipe "
        f"(ViT-B/16, 1600 epochs on ImageNet-1K at effective batch 4096, about 500k steps; the `{PRESETS['c2f']}` "
        "preset); "
        "they are this encoder's only if it ran that recipe to the end. Evaluate before quoting.",
        f"- Licence: {licence}. The weights also derive from the training images and pseudo-labels, "
        "whose terms (e.g. ImageNet's) may restrict use.",
    ]


def _recipe(train: TrainConfig) -> str:
    """Whether `train` is its mode's packaged ViT-B/16 preset, and if not, where it differs."""
    name = PRESETS[train.model.mode]
    ours, preset = _recipe_values(train), _recipe_values(load_config(name))
    differ = sorted(k for k in ours.keys() | preset.keys() if ours.get(k) != preset.get(k))
    if not differ:
        return f"the `{name}` preset's (batch size and device count aside)."
    shown = ", ".join(f"`{k}`" for k in differ[:8]) + (f" and {len(differ) - 8} more" if len(differ) > 8 else "")
    return f"differs from the `{name}` preset in {shown}."


def _recipe_values(train: TrainConfig) -> dict:
    """{"section.key": value} of the settings that make the recipe."""
    plain = to_dict(train)
    values = {f"{s}.{k}": v for s in RECIPE_SECTIONS for k, v in plain[s].items()}
    values.update({f"data.{k}": plain["data"][k] for k in RECIPE_DATA})
    return {k: v for k, v in values.items() if k not in NOT_RECIPE}


def _numbers(values) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in values) + ")"
