"""The licence of a Hub card (a dataset release's, an exported encoder's): one of the identifiers
the Hugging Face Hub accepts in a card's `license:` (lower-case SPDX ids, plus a few of the Hub's
own), or `other` with a name and a link.

The list is the Hub's (https://huggingface.co/docs/hub/repositories-licenses); huggingface_hub
does not ship it, so it is kept here.
"""

from __future__ import annotations

import re

from .errors import ConfigError

HUB_LICENSES = frozenset(
    """
    apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0
    bigcode-openrail-m afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear
    c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0
    cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0
    cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0 cdla-permissive-1.0 cdla-permissive-2.0 wtfpl
    ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl
    lgpl-2.1 lgpl-3.0 isc h-research intel-research lppl-1.3c ms-pl apple-ascl apple-amlr mpl-2.0
    odc-by odbl openrail++ osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr
    deepfloyd-if-license fair-noncommercial-research-license llama2 llama3 llama3.1 llama3.2
    llama3.3 llama4 gemma unknown
    """.split()
)
OTHER = "other"
_NAME = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")  # the Hub's rule for license_name


def check_license(license_id: str, name: str | None = None, link: str | None = None) -> dict:
    """The card's licence fields: {"license": id} or, for `other`, {"license": "other",
    "license_name", "license_link"}. ConfigError (one line) for anything else: a CLI's exit 2."""
    lid = (license_id or "").strip().lower()
    if lid == OTHER:
        if not name or not link:
            raise ConfigError("--license other needs --license-name NAME and --license-link URL")
        if not _NAME.match(name):
            raise ConfigError(f"--license-name {name!r}: use lower-case letters, digits, '.', '+' and '-'")
        if not re.match(r"^(https?://\S+|LICENSE(\.\w+)?)$", link):
            raise ConfigError(f"--license-link {link!r}: give an http(s) URL or a LICENSE file of the release")
        return {"license": OTHER, "license_name": name, "license_link": link}
    if lid not in HUB_LICENSES:
        raise ConfigError(
            f"--license {license_id!r} is not a licence id the Hugging Face Hub accepts "
            "(e.g. cc-by-4.0, cc-by-nc-4.0, apache-2.0); use 'other' with --license-name and --license-link"
        )
    if name or link:
        raise ConfigError("--license-name and --license-link go with --license other only")
    return {"license": lid}
