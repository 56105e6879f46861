"""Every shipped file is listed in data/MANIFEST.json with the right sha256, and the manifest says what it is."""
import hashlib
import json

import pytest


def manifest(root):
    return json.loads((root / "data" / "MANIFEST.json").read_text())["files"]


def test_every_listed_file_matches_its_sha256(root):
    files = manifest(root)
    assert files, "the manifest lists no files"
    for name, meta in files.items():
        path = root / "data" / name
        assert path.exists(), f"data/{name} is listed in the manifest but missing"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == meta["sha256"], f"data/{name} does not match"
        assert path.stat().st_size == meta["bytes"], f"data/{name} has the wrong size"


def test_every_shipped_file_is_listed(root):
    files = manifest(root)
    shipped = {p.relative_to(root / "data").as_posix() for p in (root / "data").rglob("*")
               if p.is_file() and p.name != "MANIFEST.json"}
    assert shipped - set(files) == set(), f"files in data/ missing from the manifest: {shipped - set(files)}"


@pytest.mark.parametrize("key", ["license", "contents"])
def test_every_entry_says_what_it_is(root, key):
    for name, meta in manifest(root).items():
        assert meta.get(key), f"data/{name} has no {key!r} in the manifest"


def test_downloaded_sources_are_pinned(root):
    for name, meta in manifest(root).items():
        if name.endswith(".npz"):
            src = meta["source"]
            assert src["version"] and len(src["sha256"]) == 64, name


def test_models_record_measured_accuracy_and_time(root):
    models = {n: m for n, m in manifest(root).items() if n.startswith("models/")}
    assert {"models/mnist_cnn.pt", "models/mnist_cnn_b.pt", "models/fashion_cnn.pt"} <= set(models)
    for name, meta in models.items():
        assert 0 < meta["accuracy"] <= 1 and meta["training"]["seconds"] > 0, name


def test_data_folder_stays_small(root):
    total = sum(p.stat().st_size for p in (root / "data").rglob("*") if p.is_file())
    # 19 MB before mnist_pgd (Madry et al.'s MNIST network, 3.3 M parameters, 13 MB in float32: capacity is part of
    # what makes adversarial training work); 32 MB before the verification unit's four 0.84 M-parameter networks,
    # stored in float16 (1.7 MB each). The next models should be smaller
    assert total < 40e6, f"data/ holds {total / 1e6:.1f} MB; keep it under about 40 MB"
