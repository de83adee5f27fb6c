"""Pure-JAX wireless environments with the gymnax 1.x API.

    import envs
    env, params = envs.make("msr-80", total_power=10.0)
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

`envs.names()` lists the registered environments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from envs.aigc import AIGC, AIGCParams
from envs.environment import Box, Discrete, Environment
from envs.fd_isac import FDISAC
from envs.ic_power import ICPower
from envs.mc_access import MCAccess
from envs.multi_agent import MultiAgentEnv
from envs.msr import MSR, MSRParams, water_filling
from envs.noma_uav import NomaUav
from envs.offloading import Offloading
from envs.uav_aoi import UAVAoI

__all__ = [
    "make", "names", "multi_agent_names", "register", "MultiAgentEnv", "ICPower", "MCAccess", "Environment", "Box", "Discrete", "MSR", "AIGC", "Offloading", "NomaUav", "FDISAC", "UAVAoI",
    "water_filling",
]

# name -> (environment constructor, preset overrides applied before the user's)
_REGISTRY: dict[str, tuple[Callable[..., Environment], dict[str, Any]]] = {}
_MULTI_AGENT: set[str] = set()


def register(name: str, env_factory: Callable[..., Environment], **preset: Any) -> None:
    """Register an environment under `name` with preset parameter overrides.

    `env_factory(default_params=None)` builds the environment (an `Environment` subclass works as is)."""
    if name in _REGISTRY:
        raise ValueError(f"environment {name!r} is already registered")
    _REGISTRY[name] = (env_factory, preset)
    if isinstance(env_factory, type) and issubclass(env_factory, MultiAgentEnv):
        _MULTI_AGENT.add(name)


def names() -> list[str]:
    """Registered single-agent (gymnax API) environment names, sorted."""
    return sorted(n for n in _REGISTRY if n not in _MULTI_AGENT)


def multi_agent_names() -> list[str]:
    """Registered multi-agent (JaxMARL API, `envs.multi_agent`) environment names, sorted."""
    return sorted(_MULTI_AGENT)


def make(name: str, **param_overrides: Any) -> tuple[Environment, Any]:
    """Build `(env, env_params)` for a registered name; overrides replace `EnvParams` fields.

    Raises:
        ValueError: unknown name (lists the valid ones), unknown field or out-of-range value (names the field).
        TypeError: a value of the wrong type for its field.
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown environment {name!r}; valid names: {', '.join(sorted(_REGISTRY))}")
    factory, preset = _REGISTRY[name]
    params = factory().make_params(**{**preset, **param_overrides})
    return factory(default_params=params), params


register("msr-3", MSR, num_channels=3, total_power=10.0)
register("msr-80", MSR, num_channels=80, total_power=20.0)
# GDMOPT power-allocation tutorial: 10 channels, budget 3, strong half / weak half, reward = rate - optimum.
register(
    "msr-gdmopt",
    MSR,
    num_channels=10,
    total_power=3.0,
    gain_low=[1.0] * 5 + [0.0] * 5,
    gain_high=[2.0] * 5 + [1.0] * 5,
    reward_mode="regret",
)
# Low-SNR power allocation (the main job's problem): 1 W over 3 channels with gains U(0.1, 2.0), noise 1 W, so
# water-filling often switches channels off and every textbook heuristic is clearly suboptimal (equal power 85%,
# best channel 91%, gain-proportional 95% of the optimum); reward = rate - optimum (GDMOPT's regret).
register("msr-3-lowsnr", MSR, num_channels=3, total_power=1.0, gain_low=0.1, gain_high=2.0, reward_mode="regret")
register("aigc", AIGC)
register("co", Offloading)
register("nu", NomaUav)
register("fd-isac", FDISAC)
# planning (issue 25): a UAV collecting updates from M IoT nodes, minimising their age of information
register("uav-aoi", UAVAoI, num_nodes=5)
register("uav-aoi-10", UAVAoI, num_nodes=10)
# multi-agent (envs.multi_agent): K-link interference-channel power control, WMMSE as the reference
register("ic-power", ICPower)
register("ic-power-10", ICPower, num_links=10)
register("mc-access", MCAccess)
# many-agent power control (the mean-field agents): K D2D-like links at a constant density of one per 100 m x 100 m,
# distance gains, P_max = 20 dBm, noise -95 dBm (10 MHz, 9 dB noise figure), reward = sum rate / K
for _k in (64, 256):
    register(f"ic-power-{_k}", ICPower, **ICPower.dense_preset(_k))
