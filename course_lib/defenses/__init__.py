"""Defenses, and the attacks that know them.

* :mod:`.transforms`  preprocessing defenses as modules (``Defended(model, transform)``; ``BitDepth``, ``JPEG``,
                      ``RandomResizePad``) and the tools that break them by composition: ``BPDA`` (Athalye, Carlini
                      & Wagner, 2018: the forward pass of the transform, the backward pass of the identity or of an
                      approximation) and ``EOT`` (the logits averaged over draws of the randomness)

A defense is not evaluated until an attack that knows it has been tried, with its budget stated.
"""
from .transforms import BPDA, EOT, JPEG, BitDepth, Defended, RandomResizePad

__all__ = ["Defended", "BitDepth", "JPEG", "RandomResizePad", "BPDA", "EOT"]
