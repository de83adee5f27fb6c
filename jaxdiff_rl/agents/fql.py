"""Flow Q-learning (Park, Li & Levine 2025): a flow-matching behaviour model and a one-step policy distilled from
it under Q maximisation, so acting costs one MLP pass (no chain, no candidates) while the behaviour model stays
expressive.

    behaviour flow v_theta(a_t, t, s):  L_flow = flow matching of the dataset actions given s
    one-step policy mu_w(s, z), z ~ N(0, I):
        L_mu = fql_alpha mean ||mu_w(s, z) - Phi_theta(s, z)||^2 - mean_i Q_i(s, mu_w(s, z)) / stop_grad(mean |Q|)
        Phi_theta(s, z) = the flow's K-step Euler ODE from x_1 = z (stop-gradient'ed; the shared `flow_sample`)
    critic: y = r + gamma (1 - terminal) min_i Q'_i(s', mu_w(s', z')); Polyak target critics.

The flow trains only on the BC loss (the reference's design: the Q term never distorts the behaviour model);
the Q-normalisation is the reference's `normalize_q_loss` option, on here so that one fql_alpha fits rewards of
any scale.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxdiff_rl.agents.base import adam_step, critic_step, polyak
from jaxdiff_rl.agents.networks import ActorConfig
from jaxdiff_rl.agents.offline_base import (OfflineConfig, OfflineHparams, OfflineState, actor_vectors, bc_target,
                                            clip_by_norm, make_critic, make_onestep, module_for, q_policy, td_target)
from jaxdiff_rl.diffusion import generator_loss
from jaxdiff_rl.diffusion.flow import flow_sample
from jaxdiff_rl.train.buffer import Batch

__all__ = ["default_config", "default_hparams", "update", "flow_actions"]


def default_config(**overrides: Any) -> OfflineConfig:
    """K = 10 Euler flow steps (the reference), 3 x 256 Mish networks (Diffusion-QL's widths)."""
    base = dict(algo="fql",
                actor=ActorConfig(kind="diffusion", generator="flow", hidden_dims=(256, 256, 256), diffusion_steps=10),
                critic_hidden_dims=(256, 256, 256), critic_activation="mish")
    return OfflineConfig(**{**base, **overrides})


def default_hparams(**overrides: Any) -> OfflineHparams:
    base = dict(lr_actor=3e-4, lr_critic=3e-4, gamma=0.99, tau=0.005, fql_alpha=10.0)
    return OfflineHparams(**{**base, **overrides})


def flow_actions(config: OfflineConfig, flow_params: Any, obs: jax.Array, z: jax.Array) -> jax.Array:
    """Phi_theta(s, z): the behaviour flow's K-step ODE from x_1 = z [B, A] given obs [B, S], clipped to [-1, 1]."""
    model_fn = module_for(config, z.shape[-1], obs.shape[-1])(flow_params)
    return flow_sample(jax.random.PRNGKey(0), model_fn, z.shape, obs, steps=config.actor.diffusion_steps,
                       ode=config.actor.flow_ode, clip_xt=(-1.0, 1.0), x_init=z)


def update(key: jax.Array, config: OfflineConfig, state: OfflineState, batch: Batch, hparams: OfflineHparams,
           action_dim: int, discrete: bool) -> tuple[OfflineState, dict[str, jax.Array]]:
    """One critic, behaviour-flow and one-step-policy update (module docstring). Pure."""
    critic_net, onestep_net = make_critic(config, action_dim, discrete), make_onestep(config, action_dim)
    k_next, k_flow, k_z = jax.random.split(key, 3)
    next_x = actor_vectors(k_next, config, state, state.onestep, batch.next_obs, action_dim)
    y = td_target(config, state, batch, next_x, action_dim, discrete)
    critic, critic_opt, critic_loss, q, _ = critic_step(critic_net, state, batch, y, hparams, discrete)

    target = bc_target(batch.action, action_dim, discrete)
    make_model = module_for(config, action_dim, batch.obs.shape[-1])
    flow_loss, f_grads = jax.value_and_grad(
        lambda p: generator_loss(k_flow, config.actor.generator_config, make_model(p), target, cond=batch.obs)
    )(state.actor)
    f_grads, f_norm = clip_by_norm(f_grads, hparams.max_grad_norm)
    flow, flow_opt = adam_step(state.actor, f_grads, state.actor_opt, hparams.lr_actor, hparams.weight_decay)

    z = jax.random.normal(k_z, target.shape, jnp.float32)
    teacher = jax.lax.stop_gradient(flow_actions(config, state.actor, batch.obs, z))

    def onestep_loss_fn(params):
        mu = onestep_net.apply(params, jnp.concatenate([batch.obs, z], axis=-1))
        distill = jnp.mean((mu - teacher) ** 2)
        q_pi = q_policy(critic_net, critic, batch.obs, mu, discrete, config.logit_scale).mean(0)
        q_loss = -jnp.mean(q_pi) / jax.lax.stop_gradient(jnp.mean(jnp.abs(q_pi)) + 1e-8)
        return hparams.fql_alpha * distill + q_loss, (distill, q_loss)

    (loss, (distill, q_loss)), o_grads = jax.value_and_grad(onestep_loss_fn, has_aux=True)(state.onestep)
    o_grads, o_norm = clip_by_norm(o_grads, hparams.max_grad_norm)
    onestep, onestep_opt = adam_step(state.onestep, o_grads, state.onestep_opt, hparams.lr_actor,
                                     hparams.weight_decay)
    new_state = state.replace(actor=flow, target_actor=flow, actor_opt=flow_opt, onestep=onestep,
                              onestep_opt=onestep_opt, critic=critic, critic_opt=critic_opt,
                              target_critic=polyak(state.target_critic, critic, hparams.tau),
                              updates=state.updates + 1)
    return new_state, {"critic_loss": critic_loss, "actor_loss": loss + flow_loss, "bc_loss": flow_loss,
                       "distill_loss": distill, "q_loss": q_loss, "q_mean": jnp.mean(q), "target_mean": jnp.mean(y),
                       "grad_norm/actor": f_norm, "grad_norm/onestep": o_norm}
