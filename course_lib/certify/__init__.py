"""Verification: bounds that hold for every input in the ball, and certificates built on them.

* :mod:`.bounds`     ``interval_bounds`` (interval bound propagation, Gowal et al., 2018), ``crown_bounds`` (CROWN,
                     Zhang et al., 2018) and ``margin_bounds`` (lower bounds on ``z_y - z_k``), on any model that
                     ``torch.fx`` traces into supported operations; ``certified`` where every margin bound is positive;
                     ``layer_widths`` how loose they are, layer by layer
* :mod:`.milp`       ``verify_exact``: exact verification of small ReLU networks as a mixed-integer linear program
                     (Tjeng, Xiao & Tedrake, 2019; scipy's HiGHS), big-M constraints from the CROWN bounds
* :mod:`.training`   ``certified_training``: IBP training (Gowal et al., 2018) through the course's training loop;
                     ``noise_training``: Gaussian-noise training for smoothing (with Jeong & Shin's consistency
                     term, 2020)
* :mod:`.smoothing`  ``smoothed_predict`` and ``smoothed_certify`` (randomised smoothing, Cohen, Rosenfeld &
                     Kolter, 2019): PREDICT and CERTIFY with a one-sided Clopper-Pearson bound

An attack gives an upper bound on robust accuracy, a certificate a lower bound; the exact answer lies between.
"""
from .bounds import certified, crown_bounds, interval_bounds, layer_widths, margin_bounds
from .milp import VerificationResult, verify_exact
from .smoothing import certified_accuracy_at, smoothed_certify, smoothed_predict
from .training import certified_training, noise_training

__all__ = ["interval_bounds", "crown_bounds", "margin_bounds", "certified", "layer_widths", "verify_exact",
           "VerificationResult",
           "smoothed_predict", "smoothed_certify", "certified_accuracy_at", "certified_training", "noise_training"]
