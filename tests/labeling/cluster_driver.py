"""Run one labeling job on an existing Ray cluster through the job API, as a separate process
(the test process may hold a local Ray already). The test backends are registered here and, via
Ray's worker setup hook, in every worker of the job.

    python -m tests.labeling.cluster_driver ADDRESS IMAGES OUTPUT CONFIG_JSON

Prints the job report as JSON; a LabelingError is one line on stderr and exit code 2.
"""

import json
import sys

import ray

from labeling.config import load_config
from labeling.errors import LabelingError
from labeling.job import run_label_job
from tests.labeling.fault_backends import RAY_TEST_RUNTIME_ENV, register


def main(address: str, images: str, output: str, overrides: str) -> int:
    register()
    cfg = load_config(flags={**json.loads(overrides), "address": address})
    ray.init(address=address, configure_logging=False, log_to_driver=False, runtime_env=RAY_TEST_RUNTIME_ENV)
    try:
        report = run_label_job(images, output, cfg, show_progress=False)
    except LabelingError as exc:
        print(f"c2f-label: error: {exc}", file=sys.stderr)
        return 2
    finally:
        ray.shutdown()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
