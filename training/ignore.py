"""The ignore value of training targets, the one place for it.

Every int64 label map that training code sees (loader output, model inputs, losses, pictures,
probes) marks pixels without a label as IGNORE. The store writes its own value instead
(``datasets_spec.schema.SEMANTIC_IGNORE``, 65535 in uint16); the loaders map it to IGNORE.
Instance maps use IGNORE too, beside 0 = "no instance".
"""

IGNORE = -1
