"""Claims of lesson 10's prose, checked on its stored outputs (tests/_claims.py): the lesson prints what they
rest on, the test holds the threshold."""
from _claims import number, numbers, stored


def _rates(regex):
    return numbers(stored("10"), regex)


def test_the_patch_works_on_training_and_unseen_photos():
    train = number(stored("10"), r"^toaster patch +says 'toaster' on +(\S+) of the 20")
    unseen = number(stored("10"), r"^toaster patch +says .*, +(\S+) of the 5 unseen")
    assert train >= 60 and unseen >= 50, (f"the patch says 'toaster' on {train}% of training and {unseen}% of unseen "
                                          "photo-place pairs: section 2 says 'about four in five training photos and "
                                          "seven in ten unseen ones'")


def test_noise_and_grey_squares_never_say_toaster():
    for name in ("uniform noise", "grey square"):
        train = number(stored("10"), rf"^{name} +says 'toaster' on +(\S+) of the 20")
        unseen = number(stored("10"), rf"^{name} +says .*, +(\S+) of the 5 unseen")
        assert max(train, unseen) <= 2, (f"{name}: {train}% / {unseen}% 'toaster': section 2 and the pitfalls say the "
                                         "controls of the same size never make the model say toaster")


def test_a_quarter_size_patch_does_nothing_and_a_larger_one_works():
    by_scale = _rates(r"^by scale: (\[.*?\])")
    assert by_scale[0] <= 10 and by_scale[3] >= 80, (f"success by scale {by_scale}: section 3 says the 32x32 patch "
                                                     "does nothing and the 80x80 patch works on almost every photo")


def test_the_noise_patch_is_blind_at_every_size_and_angle():
    noise = _rates(r"^by scale: .*noise: (\[.*\])$") + _rates(r"^by angle: .*noise: (\[.*\])$")
    assert max(noise) <= 2, f"noise patch rates {noise}: section 3 says it never makes the model say toaster"


def test_rotation_within_the_trained_range_works_and_beyond_it_degrades():
    by_angle = _rates(r"^by angle: (\[.*?\])")
    assert min(by_angle[:2]) >= 60 and max(by_angle[3:]) <= 50, (
        f"success by angle {by_angle}: section 3 says the rate stays high up to the trained 22.5 degrees and falls "
        "to about a third beyond")


def test_gradcam_puts_more_than_the_patch_area_on_the_patch():
    low = number(stored("10"), r"\(from (\d+%) to \d+%\)")
    area = number(stored("10"), r"covering (\S+)% of a 224x224 photo")
    assert low > 2 * area, (f"at least {low}% of the 'toaster' Grad-CAM mass lies inside a square of {area}% of the "
                            "image: section 4 says the map sits on the patch")


def test_print_and_photograph_keeps_the_patch_at_low_severity_and_kills_it_at_high():
    patch = _rates(r"severity 0-4: toaster patch (\[.*?\])")
    noise = _rates(r"severity 0-4: toaster patch .*noise: (\[.*\])$")
    assert min(patch[:3]) >= 60 and patch[4] <= 10 and patch[3] < patch[2] / 2, (
        f"toaster rate by print-and-photograph severity {patch}: section 3 says the patch survives severities 1 and "
        "2 and collapses at 3 and 4")
    assert max(noise) <= 2, f"noise patch after print and photograph: {noise}; the prose says it never says toaster"


def test_no_single_step_of_the_camera_kills_the_patch_but_together_they_do():
    out = stored("10")
    everything = number(out, r"severity 3: everything (\d+%);")
    no_blur = number(out, r"everything but the blur (\d+%);")
    blur_only = number(out, r"the blur alone (\d+%)$")
    assert min(no_blur, blur_only) >= 2 * max(everything, 10), (
        f"severity 3: all {everything}%, without the blur {no_blur}%, the blur alone {blur_only}%: section 3 says no "
        "single step does the damage, the steps compound")


def test_the_digit_patch_works_and_beats_its_blind_controls():
    out = stored("10")
    rate = number(out, r"say '3' on (\d+%) of 500 held-out digits")
    noise = number(out, r"random noise of the same size: says '3' on +(\d+%)")
    assert rate >= 30 and rate >= 5 * max(noise, 1), (f"digit patch {rate}%, random noise {noise}%: section 5 says "
                                                      "the patch works where noise of the same size does not")


def test_the_students_eot_steps_train_a_working_patch():
    out = stored("10")
    mine = number(out, r"100 of your signed EOT steps: mnist_cnn says '3' on (\d+%)")
    noise = number(out, r"signed EOT steps.*random noise: (\d+%)\)")
    assert mine >= 30 and mine >= 5 * max(noise, 1), (f"100 EOT steps give {mine}% (noise {noise}%): the exercise "
                                                      "says the student's step, repeated, trains a patch")
