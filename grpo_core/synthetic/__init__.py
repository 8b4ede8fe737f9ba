"""The synthetic group linear bandit of Ramesh et al. 2024 and its experiments.

The paper's synthetic experiments (arXiv:2405.20304, https://arxiv.org/abs/2405.20304), as stated in
docs/ALGORITHM.md#log-linear-policies.
"""
