"""`ray start` for an extra node on this machine that stays on loopback (tests only).

Ray refuses to add a node while RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (the setting that keeps a
local Ray on loopback), and with it =1 it rewrites 127.0.0.1 to the machine's external address
before connecting. This runs Ray's own `ray start` with that rewrite switched off, so the node
joins the head at 127.0.0.1 and advertises 127.0.0.1 (give it `--node-ip-address=127.0.0.1`).
"""

import os
import sys

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "1"  # read when ray is imported

from ray._private import services  # noqa: E402
from ray.scripts.scripts import main  # noqa: E402

if __name__ == "__main__":
    services.resolve_ip_for_localhost = lambda host: host
    sys.exit(main())
