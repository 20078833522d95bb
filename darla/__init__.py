"""darla: zero-shot transfer in reinforcement learning, built around DARLA (Higgins et al. 2017).

Three stages, one pipeline: learn to see (``vision``), learn to act (``agents``), transfer
(zero-shot evaluation in shifted ``envs`` domains). ``darla run`` runs them all.
"""

__version__ = "0.1.0"
