"""`c2f-train eval`: k-NN, linear probe, fine-tuning and a dense probe of an exported encoder.

See docs/evaluation.md. Entry point: `run_eval(protocol, encoder, train, val, out, cfg)`.
"""

from training.eval.config import EvalConfig
from training.eval.runner import PROTOCOLS, run_eval, run_evals

__all__ = ["EvalConfig", "PROTOCOLS", "run_eval", "run_evals"]
