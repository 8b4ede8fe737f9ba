"""Group Robust Preference Optimization (Ramesh et al., NeurIPS 2024), the pure core.

Not DeepSeek's *Group Relative* Policy Optimization: "GRPO" here is always *group robust*.
This package never imports prefect or mlflow, never prints, and takes seed and device as arguments.
"""

__version__ = "0.1.0"
