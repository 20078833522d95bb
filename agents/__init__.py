"""darla.agents: a frozen vision model inside stable-baselines3 (stage 2, "learn to act") and zero-shot
evaluation in shifted domains (stage 3, "transfer").

* :class:`FrozenVisionExtractor` — an SB3 features extractor around a frozen vision model (simple);
* :class:`LatentVecEnv` / :class:`LatentObservation` — wrappers that encode frames once per step (fast);
* :func:`train_policy` / :func:`load_policy` — any SB3 algorithm (:func:`check_algo`) on latents, the extractor,
  or pixels; saved as safetensors + JSON (:mod:`agents.policy_io`), foreign SB3 zips read without pickle;
* :func:`zero_shot_evaluate` / :func:`write_evaluation` — same policy, same episode seeds, every domain;
* :mod:`agents.stats` — IQM, (stratified) bootstrap CIs, paired ratio CIs.

Imports ``vision`` only, never ``envs``: environments come in as ids or factories.
"""

from agents.evaluate import write_evaluation, zero_shot_evaluate
from agents.extractor import FrozenVisionExtractor
from agents.latent import LatentObservation, LatentVecEnv
from agents.stats import bootstrap_ci, iqm, ratio_ci, stratified_bootstrap_ci
from agents.train import PolicyLoadError, check_algo, load_policy, train_policy, wrap_env, wrap_vec_env

__all__ = [
    "FrozenVisionExtractor",
    "LatentObservation",
    "LatentVecEnv",
    "PolicyLoadError",
    "bootstrap_ci",
    "check_algo",
    "iqm",
    "load_policy",
    "ratio_ci",
    "stratified_bootstrap_ci",
    "train_policy",
    "wrap_env",
    "wrap_vec_env",
    "write_evaluation",
    "zero_shot_evaluate",
]
