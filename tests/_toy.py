"""Hand-made models shared by several test files (imported as ``from _toy import Linear``: pytest puts tests/ on
the import path)."""
import torch
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


def linear_two_class(seed=3, side=4, scale=1.0, dtype=torch.float64):
    """f = scale * (W x + b) with two classes whose boundary passes through the centre of the box, and 4 images
    (1 x side x side) far from the box's faces. Returns the model, x, y (the predicted class), the logit gap
    ``|m|`` per image (unscaled, m = (w0 - w1).x + b0 - b1) and ``w = w0 - w1`` flattened. Closed forms for the
    black-box attacks: the smallest L2 change of class is ``|m| / ||w||_2`` (the distance to the hyperplane), the
    smallest L-inf change ``|m| / ||w||_1`` (the corner ``x - sign(m) eps sign(w)``), both inside the box here."""
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(2, 1, side, side, generator=g, dtype=torch.float64)
    bias = torch.stack([-0.5 * (weight[0] - weight[1]).sum(), torch.zeros((), dtype=torch.float64)])
    model = Linear((scale * weight).to(dtype), (scale * bias).to(dtype)).eval()
    x = 0.4 + 0.2 * torch.rand(4, 1, side, side, generator=g, dtype=torch.float64)
    w = (weight[0] - weight[1]).flatten()
    gap = x.flatten(1) @ w + (bias[0] - bias[1])
    return model, x.to(dtype), (gap < 0).long(), gap.abs(), w
