"""The lead's side of a swarm: swarm.toml, `swarm start` (bootstrap peer, signed manifest, tracker),
and a whole swarm on one machine for `potluck demo`."""

from .bootstrap_peer import start_bootstrap_peer
from .local_swarm import LocalSwarm, free_port, local_swarm_config
from .swarm_config import load_swarm_config, parse_swarm_config, render_swarm_template
from .swarm_start import SwarmStartConfig, run_swarm, serve_until_signalled, shards_in

__all__ = [
    "LocalSwarm",
    "SwarmStartConfig",
    "free_port",
    "load_swarm_config",
    "local_swarm_config",
    "parse_swarm_config",
    "render_swarm_template",
    "run_swarm",
    "serve_until_signalled",
    "shards_in",
    "start_bootstrap_peer",
]
