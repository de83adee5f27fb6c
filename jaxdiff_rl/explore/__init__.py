"""D2RL (seed 003): diffusion-driven exploration of the action, reward and state spaces.

- actions: the DM-DDPG actor (AENPNN, Mode I), `jaxdiff_rl.agents.dm_ddpg`;
- rewards: the five reward designs and the RENPNN (Mode I), `reward.py`;
- states: the SENPNN (Mode II) and the substitute probability chi, `state.py`.

Switch them on with `AgentConfig(explore=ExploreConfig(...))`; the one training loop (`jaxdiff_rl.train`) calls
the hooks of `learner.py`. `d2rl_config` / `d2rl_hparams` give seed 003's Table II settings.
"""

from jaxdiff_rl.explore.config import REWARD_DESIGNS, ExploreConfig
from jaxdiff_rl.explore.learner import ExploreState
from jaxdiff_rl.explore.presets import d2rl_config, d2rl_hparams

__all__ = ["ExploreConfig", "ExploreState", "REWARD_DESIGNS", "d2rl_config", "d2rl_hparams"]
