"""Box-prompted SAM: images + boxes → one mask per box at original resolution, for `grounded`.

Both variants encode every image of a batch in one image-encoder pass and decode the boxes of all
images of the batch in one prompt-encoder + mask-decoder call; masks are brought to full
resolution a few at a time.
- `SamBoxes`: plain SAM (segment-anything); its masks equal SamPredictor's on the CPU. Its image
  encoder's attention runs through `scaled_dot_product_attention` (sam_sdpa.py); `compile`
  also compiles the encoder.
- `HQSamBoxes`: HQ-SAM (transformers SamHQModel, loaded with attn_implementation="sdpa"); its
  masks equal the model's own forward pass + `post_process_masks` on the same boxes.
  `hq_token_only=False` (the default of SysCV's predictor) adds the HQ mask to SAM's; True keeps
  the HQ mask alone.
bf16 autocast on CUDA.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import LabelingError
from .sam_loader import check_variant, load_sam, load_sam_hq, sam_identity
from .sam_sdpa import fuse_attention

_MASK_CHUNK = 8  # masks brought to full resolution at a time (bounds memory on huge images)
_BOX_CHUNK = 256  # boxes per mask-decoder call (each holds a copy of its image's embedding)


def box_segmenter(
    variant: str,
    checkpoint: str | None,
    model: torch.nn.Module | None,
    device: torch.device,
    revision: str | None = None,
    hq_token_only: bool = False,
    compile: bool = False,
):
    """The segmenter of `variant` ("hq" | "sam"), from a checkpoint or a built segment-anything Sam
    (tests). Plain SAM's encoder attention is switched to SDPA in place (HQ-SAM loads with SDPA);
    compile: torch.compile the image encoder, in place."""
    if check_variant(variant) == "sam":
        sam = load_sam(checkpoint, device) if model is None else model.to(device).eval()
        fuse_attention(sam.image_encoder, compile=compile)
        return SamBoxes(sam, checkpoint, device)
    if model is not None:
        raise LabelingError(
            "sam_model (a built segment-anything Sam) needs sam_variant: sam; "
            "HQ-SAM loads from sam_checkpoint (a transformers model folder or hub id)"
        )
    hq, processor = load_sam_hq(checkpoint, revision, device)
    if compile:
        hq.vision_encoder.compile()
    return HQSamBoxes(hq, processor, checkpoint, device, hq_token_only)


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


class SamBoxes:
    """Plain SAM (segment-anything `Sam`) with box prompts."""

    variant = "sam"

    def __init__(self, sam: torch.nn.Module, checkpoint: str | None, device: torch.device):
        self.sam, self.checkpoint, self.device = sam, checkpoint, device
        self.encoder = sam.image_encoder

    def identity(self) -> dict:
        width = int(self.sam.image_encoder.patch_embed.proj.weight.shape[0])
        return sam_identity(self.variant, self.checkpoint, width, int(self.sam.image_encoder.img_size))

    def segment(self, images: list[np.ndarray], boxes: list[torch.Tensor]) -> list[np.ndarray]:
        """images [H, W, 3] uint8, boxes xyxy [K, 4] original pixels (K ≥ 1) → bool [K, H, W] each."""
        from segment_anything.utils.transforms import ResizeLongestSide

        transform = ResizeLongestSide(self.sam.image_encoder.img_size)
        resized = [self._resize(transform, im) for im in images]  # [3, h, w] float each
        batch = torch.stack([self.sam.preprocess(r) for r in resized])
        with _autocast(self.device):
            embeddings = self.sam.image_encoder(batch)  # [B, C, h', w']
        prompt_boxes = torch.cat(
            [transform.apply_boxes_torch(b.to(self.device), im.shape[:2]) for b, im in zip(boxes, images)]
        )  # [ΣK, 4] model input pixels
        image_of_box = torch.repeat_interleave(
            torch.arange(len(images), device=self.device), torch.tensor([len(b) for b in boxes], device=self.device)
        )
        low_res = self.decode_boxes(embeddings, image_of_box, prompt_boxes)  # [ΣK, 1, h'', w'']
        out, start = [], 0
        for image, small, image_boxes in zip(images, resized, boxes):
            out.append(self._upscale(low_res[start : start + len(image_boxes)], small.shape[-2:], image.shape[:2]))
            start += len(image_boxes)
        return out

    def decode_boxes(self, embeddings: torch.Tensor, image_of_box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """embeddings [B, C, h', w'], image_of_box [N] (index into B), boxes [N, 4] xyxy in model input
        pixels → low-res mask logits [N, 1, h'', w''] (SAM's single-mask output), the boxes of all
        images through one prompt-encoder call and one mask-decoder pass (one per _BOX_CHUNK boxes)."""
        sparse, dense = self.sam.prompt_encoder(points=None, boxes=boxes, masks=None)  # [N, 2, C], [N, C, h', w']
        position = self.sam.prompt_encoder.get_dense_pe()  # [1, C, h', w']
        chunks = []
        with _autocast(self.device):
            for k in range(0, len(boxes), _BOX_CHUNK):
                part = slice(k, k + _BOX_CHUNK)
                chunks.append(
                    decode_masks(
                        self.sam.mask_decoder, embeddings[image_of_box[part]], position, sparse[part], dense[part]
                    )
                )
        return torch.cat(chunks)

    def _resize(self, transform, image: np.ndarray) -> torch.Tensor:
        """[H, W, 3] uint8 → [3, h, w] float on the device, longer side = SAM's input size.

        On CUDA the resize runs on the GPU (antialiased bilinear); on the CPU it is SAM's own PIL
        resize, so CPU masks equal SamPredictor's exactly.
        """
        if self.device.type == "cuda":
            # Not transform.apply_image_torch: it reads the target size from the batch and channel dims.
            size = transform.get_preprocess_shape(image.shape[0], image.shape[1], transform.target_length)
            pixels = torch.as_tensor(image, device=self.device).permute(2, 0, 1)[None].float()
            return torch.nn.functional.interpolate(pixels, size, mode="bilinear", antialias=True)[0]
        small = transform.apply_image(np.ascontiguousarray(image))
        return torch.as_tensor(small, device=self.device).permute(2, 0, 1).float()

    def _upscale(self, low_res: torch.Tensor, input_hw, orig_hw) -> np.ndarray:
        """low-res logits [K, 1, h'', w''] → bool masks [K, H, W] at the original size."""
        chunks = []
        for k in range(0, len(low_res), _MASK_CHUNK):
            logits = self.sam.postprocess_masks(low_res[k : k + _MASK_CHUNK].float(), input_hw, orig_hw)
            chunks.append((logits > self.sam.mask_threshold)[:, 0].cpu().numpy())
        return np.concatenate(chunks)


def decode_masks(
    decoder: torch.nn.Module,
    embeddings: torch.Tensor,
    position: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
) -> torch.Tensor:
    """segment-anything's MaskDecoder with an image embedding per prompt, not one image per call.

    embeddings [N, C, h, w] (prompt n's image), position [1, C, h, w], sparse [N, T, C] (prompt
    tokens), dense [N, C, h, w] → the first mask token's logits [N, 1, 4h, 4w] (multimask off)."""
    learned = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight])  # [1 + masks, C]
    tokens = torch.cat([learned.expand(len(sparse), -1, -1), sparse], dim=1)  # [N, 1 + masks + T, C]
    n, c, h, w = embeddings.shape
    queries, keys = decoder.transformer(embeddings + dense, position.expand(n, -1, -1, -1), tokens)
    features = decoder.output_upscaling(keys.transpose(1, 2).reshape(n, c, h, w))  # [N, C', 4h, 4w]
    weights = decoder.output_hypernetworks_mlps[0](queries[:, 1])  # mask token 0 → [N, C']
    return torch.einsum("nc,nchw->nhw", weights, features)[:, None]


class HQSamBoxes:
    """HQ-SAM (transformers `SamHQModel` + `SamHQProcessor`) with box prompts."""

    variant = "hq"

    def __init__(self, model, processor, checkpoint: str | None, device: torch.device, hq_token_only: bool = False):
        self.model, self.processor, self.checkpoint, self.device = model, processor, checkpoint, device
        self.hq_token_only = bool(hq_token_only)
        self.encoder = model.vision_encoder

    def identity(self) -> dict:
        vision = self.model.config.vision_config
        return sam_identity(self.variant, self.checkpoint, vision.hidden_size, vision.image_size, self.model.config) | {
            "sam_hq_token_only": self.hq_token_only
        }

    def segment(self, images: list[np.ndarray], boxes: list[torch.Tensor]) -> list[np.ndarray]:
        """images [H, W, 3] uint8, boxes xyxy [K, 4] original pixels (K ≥ 1) → bool [K, H, W] each."""
        pixels = self.processor.image_processor(  # resize, normalise and pad on the model's device
            images=list(images), return_tensors="pt", input_data_format="channels_last", device=self.device
        )
        with _autocast(self.device):
            encoded = self.model.vision_encoder(pixels["pixel_values"].to(self.device))
        orig = pixels["original_sizes"].tolist()
        resized = pixels["reshaped_input_sizes"].tolist()
        scaled = [
            b.to(self.device) * torch.tensor([r[1] / o[1], r[0] / o[0]] * 2, device=self.device)
            for b, o, r in zip(boxes, orig, resized)
        ]  # model input pixels
        low_res = self.decode_boxes(encoded.last_hidden_state, encoded.intermediate_embeddings, scaled)
        return [self._upscale(masks, o, r) for masks, o, r in zip(low_res, orig, resized)]

    def decode_boxes(
        self, embeddings: torch.Tensor, early: list[torch.Tensor], boxes: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """embeddings [B, C, h', w'], early: HQ's ViT features [B, ...] each, boxes [K_i, 4] per image
        in model input pixels → low-res logits [K_i, 1, h'', w''] per image, from one model call: each
        image's boxes padded to the longest list with copies of its last box (boxes are decoded
        independently), the padding dropped after."""
        most = max(len(b) for b in boxes)
        padded = torch.stack([torch.cat([b, b[-1:].expand(most - len(b), 4)]) for b in boxes])  # [B, most, 4]
        with _autocast(self.device):
            masks = self.model(
                image_embeddings=embeddings,
                intermediate_embeddings=early,
                input_boxes=padded,
                multimask_output=False,
                hq_token_only=self.hq_token_only,
            ).pred_masks
        return [masks[i, : len(b)] for i, b in enumerate(boxes)]  # [B, most, 1, h'', w''] → per image

    def _upscale(self, low_res: torch.Tensor, orig_hw, input_hw) -> np.ndarray:
        """low-res logits [K, 1, h'', w''] → bool masks [K, H, W] at the original size."""
        chunks = []
        for k in range(0, len(low_res), _MASK_CHUNK):
            (masks,) = self.processor.post_process_masks([low_res[k : k + _MASK_CHUNK].float()], [orig_hw], [input_hw])
            chunks.append(masks[:, 0].cpu().numpy())
        return np.concatenate(chunks)
