"""A PyTorch implementation of D2SAC (AIGC) and DM-DDPG (msr-80), written the way the papers' reference code is
(GDMOPT/AGOD: PyTorch networks, a NumPy environment stepped in Python, a tensor replay buffer, Python loops over
environments and denoising steps), with the same algorithm, network sizes and hyperparameters as
`jaxdiff_rl.agents.d2sac` / `dm_ddpg` defaults. Used by `benchmarks/train_speed.py` as the side-by-side reference.

Modules: `envs_numpy` (gym-style NumPy environments around the independent loop implementations of
tests/envs/reference_numpy.py, which the test suite checks step by step against `envs`), `nets` (denoiser, double
critic, VP schedule, DDPM sampler), `buffer` (n-step replay), `agents` (the two update rules), `loop` (training).
Needs the `torch` extra: `pip install -e ".[torch]"`.
"""
