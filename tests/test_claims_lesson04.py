"""Claims of lesson 04's prose, checked on the outputs stored in the notebook (see tests/_claims.py)."""
from _claims import number, numbers, stored


def test_cam_decomposes_the_logit_exactly():
    err = number(stored("04"), r"largest \|mean\(M_c\) \+ b_c - y_c\| over 8 images: (\S+)$")
    assert err < 1e-4, "section 1 says mean(M_c) + b_c gives back the logit up to float32 rounding"


def test_grad_cam_equals_relu_cam_over_z():
    out = stored("04")
    for name in ["predicted", "second"]:
        err = number(out, rf"^{name} *: max \|Grad-CAM - ReLU\(CAM\)/Z\| = (\S+) ")
        assert err < 1e-5, f"section 2 says Grad-CAM = ReLU(CAM)/Z to rounding error ({name} class)"


def test_fashion_marked_is_a_clever_hans():
    out = stored("04")
    true_mark = number(out, r"^with the true mark +(\S+)")
    no_mark = number(out, r"^without any mark +(\S+)")
    follows = number(out, r"predicts the class of the \(wrong\) mark on (\S+) of")
    assert true_mark > 99 and no_mark < 80 and follows > 85, (
        "section 4 says fashion_marked is perfect with its marks, much worse without, and follows a wrong mark")


def test_fashion_cnn_ignores_the_marks():
    out = stored("04")
    clean = numbers(out, r"^without any mark +\S+ +(\S+)$")[0]
    other = numbers(out, r"^with another class mark +\S+ +(\S+)$")[0]
    assert abs(other - clean) < 1, "section 4 says fashion_cnn does not care about the misleading marks"


def test_occlusion_peaks_on_the_mark_only_for_the_marked_model():
    med_marked, _, med_cnn, _ = numbers(stored("04"), r"^occlusion, window 2, stride 2 +(.*)$")
    assert med_marked < 2 and med_cnn > 8, (
        "section 4 says 2x2 occlusion peaks on the mark for fashion_marked and far from it for fashion_cnn")


def test_feature_map_occlusion_agrees_with_the_class_except_for_the_trouser():
    out = stored("04")
    corr = {name: number(out, rf"^{name} .* correlation of the two maps (\S+)$")
            for name in ["Ankle boot", "Shirt", "Sandal", "Trouser"]}
    assert min(corr["Ankle boot"], corr["Shirt"], corr["Sandal"]) > 0.7, (
        "the feature-map occlusion section says the strongest channel's map and the class map agree for three garments")
    assert corr["Trouser"] < min(corr["Ankle boot"], corr["Shirt"], corr["Sandal"]), (
        "the feature-map occlusion section says the two maps agree less for the trouser")
