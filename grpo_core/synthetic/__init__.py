"""The paper's synthetic group linear bandit and its experiments (spec section 5)."""
