"""Adversarial attacks: small changes to an image that change a model's decision.

White-box attacks see the model and its gradients; each module holds one attack, with the formula and the
paper in its docstring:

* :mod:`.linear`    the exact worst case of a linear classifier in the L-infinity ball (closed form)
* :mod:`.fgsm`      the Fast Gradient Sign Method (Goodfellow, Shlens & Szegedy, 2015)
* :mod:`.pgd`       Projected Gradient Descent, L-infinity and L2 (Madry et al., 2018): :func:`pgd_step`,
                    :func:`project_linf`, :func:`project_l2` are the algorithm, :func:`pgd` the bookkeeping
* :mod:`.cw`        the Carlini & Wagner L2 attack (2017)
* :mod:`.patch`     universal adversarial patches (Brown et al., 2017): train one, paste it anywhere
* :mod:`.evaluate`  success rates, robustness curves over eps, transfer between models (grey box)
* :mod:`.robust`    robust accuracy under the worst of an ensemble of attacks per image (PGD on two losses,
                    targeted PGD, Square), the evaluation a defense needs
* :mod:`.baselines` the blind baselines inside the same ball (constant shifts, random signs, corruptions
                    projected onto the ball) that every attack result stands next to

Black-box attacks never see the model, only an :class:`Oracle` that answers queries and counts them:

* :mod:`.oracle`    ``Oracle(model, access="scores" | "labels", max_queries=None)``: counts queries per image,
                    enforces the budget, and traces the best distance after each number of queries
* :mod:`.zoo`       ZOO (Chen et al., 2017): C&W's objective with gradients estimated from probabilities
* :mod:`.boundary`  the Boundary attack (Brendel, Rauber & Bethge, 2018): labels only
* :mod:`.hsj`       HopSkipJumpAttack (Chen, Jordan & Wainwright, 2020): labels only, estimated boundary normals
* :mod:`.square`    the Square Attack (Andriushchenko et al., 2020): scores only, random squares in the eps-ball

``y`` is the true label (untargeted) or the target label (``targeted=True``). Every attack returns the
adversarial images only, detached, on the input's device, in ``[0, 1]`` and inside its budget; it leaves the
model's mode, its parameters' ``requires_grad`` and ``.grad`` and its inputs untouched.
"""
from .baselines import BLIND_CORRUPTIONS, baseline_sweep, blind_baselines, project_to_ball
from .boundary import boundary_attack, boundary_proposal, noise_start
from .cw import carlini_wagner
from .evaluate import attack_sweep, noise_success_rate, perturbation_norm, success_mask, success_rate, transfer
from .fgsm import fgsm
from .hsj import hop_skip_jump
from .linear import linear_worst_case
from .oracle import Oracle, QueryBudgetExceeded
from .patch import apply_patch, patch_success, place_patch, sample_transforms, train_patch
from .pgd import loss_slice, pgd, pgd_step, project_l2, project_linf
from .robust import ROBUST_ATTACKS, RobustAccuracy, robust_accuracy
from .square import square_attack
from .zoo import oracle_margin, zoo

__all__ = ["robust_accuracy", "RobustAccuracy", "ROBUST_ATTACKS",
           "linear_worst_case", "fgsm", "pgd", "pgd_step", "project_linf", "project_l2", "loss_slice",
           "carlini_wagner", "attack_sweep", "transfer", "success_rate", "success_mask", "perturbation_norm",
           "noise_success_rate", "blind_baselines", "baseline_sweep", "project_to_ball",
           "BLIND_CORRUPTIONS",
           "train_patch", "apply_patch", "place_patch", "patch_success", "Oracle", "QueryBudgetExceeded",
           "boundary_attack", "noise_start", "zoo", "hop_skip_jump", "square_attack",
           "sample_transforms", "oracle_margin", "boundary_proposal"]
