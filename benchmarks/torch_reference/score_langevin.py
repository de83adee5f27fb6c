"""PyTorch reference of the diffusion channel estimator (`jaxdiff_rl.estimate.diffusion`), written the usual way
(as the score-based MIMO estimation code is): the same score network (`nets.Denoiser` with no state and a linear
output, i.e. `jaxdiff_rl.nets.Denoiser`), and annealed Langevin posterior sampling as a Python loop over levels and
steps, one batched network call per step, the same EDM preconditioning of the network and the pilot-likelihood score with
the same annealing.

`load_flax_denoiser` copies a Flax `Denoiser`'s parameters, so both sides run the same network (tested)."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.torch_reference.nets import Denoiser


def make_score_net(dim: int, hidden: tuple[int, ...], time_dim: int) -> Denoiser:
    return Denoiser(dim, 0, hidden, time_dim, out_tanh=False)


def load_flax_denoiser(model: Denoiser, params: dict) -> Denoiser:
    """Copy Flax `Denoiser` params into the torch module. Flax names the time-embedding layers in creation order:
    Dense_1 is the first (time_dim -> 2 time_dim), Dense_0 the second; the trunk is MLP_0/Dense_0..n."""
    p = params["params"]
    pairs = [(model.time_mlp[0], p["Dense_1"]), (model.time_mlp[2], p["Dense_0"])]
    linears = [m for m in model.trunk if isinstance(m, torch.nn.Linear)]
    pairs += [(lin, p["MLP_0"][f"Dense_{i}"]) for i, lin in enumerate(linears)]
    with torch.no_grad():
        for lin, w in pairs:
            lin.weight.copy_(torch.from_numpy(np.asarray(w["kernel"]).T.copy()))
            lin.bias.copy_(torch.from_numpy(np.asarray(w["bias"]).copy()))
    return model


def real_operator(pilots: np.ndarray, n_r: int) -> torch.Tensor:
    a = np.kron(np.eye(n_r), np.asarray(pilots).T)
    return torch.from_numpy(np.block([[a.real, -a.imag], [a.imag, a.real]]).astype(np.float32))


def prior_score(model: Denoiser, x: torch.Tensor, i: int, sigma: float, sigma_data: float) -> torch.Tensor:
    """Score of the EDM-preconditioned prior (`jaxdiff_rl.estimate.diffusion.preconditioned_model`): z_hat =
    sigma c_in^2 x - sigma_d c_in F(c_in x, i), c_in = 1 / sqrt(sigma^2 + sigma_d^2); score = -z_hat / sigma."""
    c_in = (sigma**2 + sigma_data**2) ** -0.5
    t = torch.full((x.shape[0],), i, dtype=torch.long)
    z_hat = sigma * c_in**2 * x - sigma_data * c_in * model(c_in * x, t, torch.zeros(x.shape[0], 0))
    return -z_hat / sigma


@torch.no_grad()
def posterior_estimate(model: Denoiser, sigmas: np.ndarray, sigma_data: float, y_r: torch.Tensor, a_r: torch.Tensor,
                       noise_var: float, num_samples: int, steps_per_level: int, step_size: float,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Average of `num_samples` annealed-Langevin posterior samples, real-stacked: y_r [B, 2 N_r N_p] -> [B, D]
    (with the final Tweedie denoising step, as the JAX estimator)."""
    batch, dim = y_r.shape[0], a_r.shape[1]
    y = y_r.repeat(num_samples, 1)
    x = float(sigmas[0]) * torch.randn(batch * num_samples, dim, generator=generator)

    def score(x: torch.Tensor, i: int) -> torch.Tensor:
        sigma = float(sigmas[i])
        lik = ((y - x @ a_r.T) @ a_r) / (0.5 * noise_var + sigma**2)
        return prior_score(model, x, i, sigma, sigma_data) + lik

    for i in range(len(sigmas)):
        alpha = step_size * (float(sigmas[i]) / float(sigmas[-1])) ** 2
        for _ in range(steps_per_level):
            x = x + alpha * score(x, i) + (2 * alpha) ** 0.5 * torch.randn(x.shape, generator=generator)
    x = x + float(sigmas[-1]) ** 2 * score(x, len(sigmas) - 1)
    return x.reshape(num_samples, batch, dim).mean(0)
