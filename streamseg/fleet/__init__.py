"""``streamseg serve``: live cameras kept running across the nodes of a Ray cluster (or on this machine alone).

- ``config``: CAMERAS.yaml (the ``sources:`` list of ``run --config`` plus shared run options), each camera's
  outputs filled in for the node it runs on;
- ``placement``: where cameras go (pure functions);
- ``state``: the camera->node map, kept where a restarted ``serve`` finds it;
- ``node``: the node pipeline, one ordinary multi-source ``Pipeline`` per node (or GPU); ``capacity``: how many
  cameras it holds, measured at its start;
- ``cluster``: nodes on Ray, or this machine alone;
- ``controller``: desired against actual, every half second; moves the cameras of a node that died;
- ``api``: ``/cameras``, ``/nodes``, ``/metrics``, ``/sd`` on ``--api-port``, changed under the run API's rules
  (``streamseg.outputs.servers.access``).
"""
