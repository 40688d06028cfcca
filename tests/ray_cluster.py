"""A two-node Ray cluster on 127.0.0.1 for the tests, with Ray's own multi-node test utility.

Run as a program: it prints one JSON line (the address, and the id of each node) and keeps the
cluster up until its stdin closes. The second node carries the custom resource ``second``, so that
work can be sent there on purpose. Every node binds to 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0:
Ray 2.60 otherwise swaps a loopback node address for the machine's own), each with its own temp dir.
"""

import json
import os
import shutil
import sys
import tempfile

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
# The utility records the head's address in <RAY_TMPDIR>/ray/ray_current_cluster (else /tmp/ray, which
# a fresh machine lacks): a folder of this cluster's own.
os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="clive-rt-")
os.makedirs(os.path.join(os.environ["RAY_TMPDIR"], "ray"))

from ray.cluster_utils import Cluster  # noqa: E402 - after the switch above, which Ray reads as it loads


def main() -> None:
    head_dir, second_dir = tempfile.mkdtemp(prefix="clive-rt-a-"), tempfile.mkdtemp(prefix="clive-rt-b-")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"node_ip_address": "127.0.0.1", "num_cpus": 1, "include_dashboard": False,
                        "temp_dir": head_dir, "object_store_memory": 100 * 1024 * 1024},
    )
    second = cluster.add_node(node_ip_address="127.0.0.1", num_cpus=1, resources={"second": 1},
                              temp_dir=second_dir, object_store_memory=100 * 1024 * 1024)
    cluster.wait_for_nodes()
    print(json.dumps({"address": cluster.address, "head": cluster.head_node.node_id, "second": second.node_id}),
          flush=True)
    sys.stdin.read()
    cluster.shutdown()
    for folder in (head_dir, second_dir, os.environ["RAY_TMPDIR"]):
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
