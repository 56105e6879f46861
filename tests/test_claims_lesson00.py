"""Claims of lesson 00's prose, checked on its stored outputs (see tests/_claims.py)."""
from _claims import number, stored

OUT = stored("00")


def test_mnist_cnn_is_right_on_more_than_98_percent():
    # section 2: "a very regular world" in which the digit model is nearly always right
    assert number(OUT, r"^mnist_cnn +accuracy: (\S+)") > 0.98


def test_the_model_is_confident_on_noise():
    # section 3, plausibility: the model is about as sure of uniform noise as of real digits
    noise = number(OUT, r"uniform-noise images: (\S+)")
    digits = number(OUT, r"on the 2,000 real digits: +(\S+)")
    assert noise > 0.5 and noise > digits - 0.1


def test_noise_and_rotation_hurt_the_digit_model():
    # section 4: strong noise brings mnist_cnn to about chance; rotation by 60 degrees costs more than 10 points
    clean = number(OUT, r"^\(clean\) +(\S+)")
    assert number(OUT, r"^gaussian_noise +(\S+) +\S+ +\S+$") < 0.2 < clean
    assert number(OUT, r"^rotation +(\S+) +\S+ +-$") < clean - 0.1


def test_confidence_exceeds_accuracy_off_distribution():
    # pitfalls: the reliability diagram of rotated digits lies below the diagonal, the clean one nearly on it
    assert number(OUT, r"rotated by ±60°: .*ECE (\S+)") > 0.2 > number(OUT, r"^clean digits: .*ECE (\S+)")
