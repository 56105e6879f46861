"""Hand-made models shared by several test files (imported as ``from _toy import Linear``: pytest puts tests/ on
the import path)."""
from torch import nn


class Linear(nn.Module):
    """f(x) = W vec(x) + b, with W stored as (K, C, H, W) so that W[t] lines up with an image: its input gradient,
    saliency and attacks have closed forms to test against."""

    def __init__(self, weight, bias):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    def forward(self, x):
        return x.flatten(1) @ self.weight.flatten(1).T + self.bias
