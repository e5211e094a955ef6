"""The losses' balance, measured on the steps that write a log record (``engine.loss_probe``).

- ``grad_norm/<target>``: the norm of the gradient of the weighted loss ``w_t L_t`` with respect to
  the encoder's output tokens, the one tensor through which every loss reaches the shared encoder;
  ``grad_share/<target>``: its share of the sum of these norms (the shares sum to 1). Measured at
  the encoder output, not at its parameters: each loss costs one backward pass through the decoder
  and heads only (the encoder's gradient is this one pulled back through the same Jacobian).
- ``loss_<target>/<strategy>_masks``: each target's loss over the samples that the curriculum
  masked with that strategy (semantic-guided, instance-guided, random); none under patch mixing,
  which gives no sample a single strategy.

Values come as ``[2]`` tensors (sum, count): the step adds them over micro-batches and ranks and
logs sum / count, leaving out a strategy no sample used.
"""

import torch
import torch.nn.functional as F

from training.losses import per_sample_terms
from training.masking import STRATEGY_NAMES


def probe_losses(model, batch: dict, strategy: torch.Tensor, out: dict) -> dict[str, torch.Tensor]:
    """model: a ``C2FMAE``; strategy: [N] the strategies its masks followed, or [N, 3] mixing
    weights; out: its forward's output on ``batch``, graph intact. -> name -> [2] (sum, count)."""
    terms = {t: model.loss_weights[t] * out["losses"][t] for t in model.targets}
    values = grad_shares(out["latent"], terms)
    if strategy.dim() == 1:
        values.update(strategy_losses(model, batch, strategy, out))
    return values


def grad_shares(latent: torch.Tensor, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """latent: [N, 1 + T, D]; terms: name -> weighted loss (scalar). -> ``grad_norm/<name>`` and
    ``grad_share/<name>``, each (value, 1). Keeps the graph for the step's backward."""
    norms = []
    for term in terms.values():
        (grad,) = torch.autograd.grad(term, latent, retain_graph=True, allow_unused=True)
        norms.append(torch.zeros((), device=latent.device) if grad is None else grad.float().norm())
    norms = torch.stack(norms)
    shares = norms / norms.sum().clamp(min=torch.finfo(torch.float32).tiny)
    one = torch.ones((), device=latent.device)
    values = {f"grad_norm/{t}": torch.stack([n, one]) for t, n in zip(terms, norms)}
    values.update({f"grad_share/{t}": torch.stack([s, one]) for t, s in zip(terms, shares)})
    return values


@torch.no_grad()
def strategy_losses(model, batch: dict, strategy: torch.Tensor, out: dict) -> dict[str, torch.Tensor]:
    """strategy: [N] int64 -> ``loss_<target>/<strategy>_masks``: (sum, count) of the target's
    loss terms over the samples masked with that strategy."""
    cfg, values = model.cfg, {}
    groups = F.one_hot(strategy, len(STRATEGY_NAMES)).float().T  # [3, N]
    for t in model.targets:
        pred, truth = model.loss_inputs(batch, out["preds"], out["masks"], t)
        sums, counts = per_sample_terms(
            t, pred, truth, cfg.norm_pix_loss, cfg.instance_pull_margin, cfg.instance_push_margin
        )
        for s, name in enumerate(STRATEGY_NAMES):
            values[f"loss_{t}/{name}_masks"] = torch.stack([groups[s] @ sums, groups[s] @ counts])
    return values
