"""Physical-layer estimators: classical MIMO channel estimators (LS, LMMSE, OMP, LASSO) and the diffusion-prior
posterior-sampling estimator built on the shared score-based core (`jaxdiff_rl.diffusion.score`)."""
