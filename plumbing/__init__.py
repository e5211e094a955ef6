"""What c2f-label, c2f-train and c2f-data share: the CLI boundary (one-line errors, exit codes,
logging, common flags: `cli_boundary`), the strict YAML config loader (`config_yaml`,
`config_layers`, `config_fields`, `config_build`, `errors.ConfigError`), `errors.one_line` (an
exception as one line), `files.atomic_write` and `processes`.
Imports none of the project's packages, so every one of them may import it.
"""
