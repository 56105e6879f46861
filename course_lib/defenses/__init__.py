"""Defenses, and the attacks that know them.

* :mod:`.transforms`  preprocessing defenses as modules (``Defended(model, transform)``; ``BitDepth``, ``JPEG``,
                      ``RandomResizePad``) and the tools that break them by composition: ``BPDA`` (Athalye, Carlini
                      & Wagner, 2018: the forward pass of the transform, the backward pass of the identity or of an
                      approximation) and ``EOT`` (the logits averaged over draws of the randomness)
* :mod:`.diagnostics` ``masking_diagnostics``: Athalye, Carlini & Wagner's checklist for gradient masking, measured
* :mod:`.detectors`   detectors with one interface (``fit``, ``score``, ``calibrate`` at a false-positive rate,
                      ``detect``): ``SoftmaxDetector``, ``PCADetector``, ``DetectorNetwork``,
                      ``FeatureSqueezingDetector``; ``roc``; ``adaptive_attack`` (fools the model under the threshold)
* :mod:`.training`    ``adversarial_training`` (Madry et al., 2018; ``fast=True``: Wong, Rice & Kolter, 2020) and
                      ``distill`` (defensive distillation, Papernot et al., 2016), through the course's training loop

A defense is not evaluated until an attack that knows it has been tried, with its budget stated.
"""
from .detectors import (
                        Detector,
                        DetectorNetwork,
                        FeatureSqueezingDetector,
                        PCADetector,
                        SoftmaxDetector,
                        adaptive_attack,
                        roc,
)
from .diagnostics import MaskingReport, masking_diagnostics
from .training import adversarial_training, distill, distillation_loss
from .transforms import BPDA, EOT, JPEG, BitDepth, Defended, MedianFilter, RandomResizePad

__all__ = ["Defended", "BitDepth", "MedianFilter", "JPEG", "RandomResizePad", "BPDA", "EOT",
           "adversarial_training", "distill", "distillation_loss", "masking_diagnostics", "MaskingReport",
           "Detector", "SoftmaxDetector", "PCADetector", "DetectorNetwork", "FeatureSqueezingDetector", "roc",
           "adaptive_attack"]
