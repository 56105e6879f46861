"""Explanations: which parts of the input made the model decide as it did.

One module per family, each with the formula and the paper in its docstring:

* :mod:`.saliency`   gradients: saliency (Simonyan et al.), SmoothGrad, Integrated Gradients
* :mod:`.cam`        CAM (Zhou et al.) and Grad-CAM (Selvaraju et al.)
* :mod:`.occlusion`  occlusion sensitivity (Zeiler & Fergus)
* :mod:`.games`      a model and an image as a cooperative game over players (superpixels, patches)
* :mod:`.shapley`    Shapley values: exact, permutation sampling, KernelSHAP
* :mod:`.lime`       LIME (Ribeiro et al.)
* :mod:`.featurevis` feature maps and activation maximisation
* :mod:`.fidelity`   how good is an explanation (1): deletion/insertion (Petsiuk et al.), selectivity
* :mod:`.stability`  (2): max-sensitivity (Yeh et al.), rank correlation (consistency)
* :mod:`.sanity`     (3): the model-randomisation check (Adebayo et al.) and its edge-detector reference
* :mod:`.metrics`    all of them in one place, and the cost (time per image)
* :mod:`.contrast`   "why a and not b?": a model whose one output is f_a - f_b, explained by any method

Every function leaves the model's mode, its parameters' ``requires_grad`` and its inputs untouched, removes
its hooks (also on error) and returns detached tensors on the input's device.
"""
from .cam import cam, grad_cam, grad_cam_ingredients, peak_distance
from .contrast import LogitDifference, contrastive
from .featurevis import activation_maximization, feature_maps
from .fidelity import deletion_auc, first_crossing, insertion_auc, selectivity
from .games import (
                    all_coalitions,
                    as_game,
                    coalition,
                    coalition_table,
                    image_game,
                    lookup_game,
                    patch_segments,
                    region_explainer,
                    superpixel_segments,
)
from .lime import lime, lime_kernel, lime_samples
from .metrics import time_per_image, timed_call
from .occlusion import occlusion
from .saliency import ig_baselines, integrated_gradients, saliency, smoothgrad
from .sanity import edge_map, randomization_check
from .shapley import kernel_shap, shapley_exact, shapley_permutation
from .stability import max_sensitivity, rank_correlation, spearman

__all__ = [
    "saliency", "smoothgrad", "integrated_gradients", "cam", "grad_cam", "occlusion",
    "image_game", "as_game", "superpixel_segments", "patch_segments",
    "shapley_exact", "shapley_permutation", "kernel_shap",
    "lime", "feature_maps", "activation_maximization", "deletion_auc", "insertion_auc", "max_sensitivity",
    "randomization_check", "rank_correlation", "selectivity", "time_per_image", "edge_map", "contrastive",
    "LogitDifference", "grad_cam_ingredients", "peak_distance", "ig_baselines",
    "all_coalitions", "coalition", "coalition_table", "lookup_game", "region_explainer", "lime_kernel",
    "lime_samples", "timed_call", "spearman", "first_crossing",
]
