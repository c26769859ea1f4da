import tarfile
import urllib.error

import pytest
import torch
from PIL import Image

import kdlib
from kdlib import data
from kdlib.data import DataError


def make_image_folder(root, classes=("cat", "dog"), per_class=3):
    for split in ("train", "test"):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (32, 32), (40 * c, 10 * i, 200)).save(folder / f"{i}.png")
    return root


def test_synthetic_is_uint8_tensors_with_statistics():
    s = data.synthetic(n_train=100, n_test=50)
    assert s.x_train.dtype == torch.uint8 and s.x_train.shape == (100, 3, 32, 32)
    assert s.y_train.dtype == torch.int64 and set(s.y_train.tolist()) == set(range(10))
    assert len(s.mean) == 3 and all(0 < v < 1 for v in s.mean)


def test_image_folder_converts_sizes_and_modes(tmp_path, tmp_cache):
    root = make_image_folder(tmp_path / "images")
    Image.new("L", (40, 48), 128).save(root / "train" / "cat" / "gray.png")
    Image.new("RGBA", (16, 16), (1, 2, 3, 4)).save(root / "test" / "dog" / "rgba.png")
    s = kdlib.load(root)
    assert s.classes == ["cat", "dog"]
    assert s.x_train.shape == (7, 3, 32, 32) and s.x_test.shape == (7, 3, 32, 32)
    assert s.y_train.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert s.x_test[-1, :, 0, 0].tolist() == [1, 2, 3]  # RGBA -> RGB kept the colour


def test_image_folder_is_decoded_once_then_read_from_the_cache(tmp_path, tmp_cache, monkeypatch):
    root = make_image_folder(tmp_path / "images")
    first = kdlib.load(root)
    monkeypatch.setattr(data, "_decode", lambda *a: pytest.fail("decoded again"))
    second = kdlib.load(root)
    assert torch.equal(first.x_train, second.x_train)


def test_archives_are_extracted_once(tmp_path, tmp_cache):
    root = make_image_folder(tmp_path / "images")
    archive = tmp_path / "images.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(root, arcname="images")
    s = kdlib.load(archive)
    assert len(s.y_train) == 6 and s.classes == ["cat", "dog"]
    assert len(list((tmp_cache / "extracted").iterdir())) == 1


def test_a_copied_archive_reuses_its_extraction(tmp_path, tmp_cache):
    # The shared data archive is re-copied (new mtime, maybe new path) on every machine start.
    root = make_image_folder(tmp_path / "images")
    archive = tmp_path / "images.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(root, arcname="images")
    kdlib.load(archive)
    copy = tmp_path / "elsewhere" / "images.tar.gz"
    copy.parent.mkdir()
    copy.write_bytes(archive.read_bytes())
    kdlib.load(copy)
    assert len(list((tmp_cache / "extracted").iterdir())) == 1


def test_showcase_takes_one_image_per_class_in_turn():
    # Test images sorted by class, as an ImageFolder lists them.
    y = torch.arange(3).repeat_interleave(4)
    splits = data.Splits(torch.zeros(1, 3, 2, 2, dtype=torch.uint8), torch.zeros(1, dtype=torch.long),
                         torch.arange(12, dtype=torch.uint8).view(12, 1, 1, 1).expand(12, 3, 2, 2), y,
                         classes=["a", "b", "c"])
    images, labels = splits.showcase(5)
    assert labels.tolist() == [0, 1, 2, 0, 1]
    assert images[:, 0, 0, 0].tolist() == [0, 4, 8, 1, 5]


@pytest.mark.parametrize("breakage, message", [
    ("missing", "does not exist"),
    ("no_test", "has no test/ folder"),
    ("different_classes", "different class folders"),
    ("empty_class", "has no files"),
    ("not_an_image", "notes.txt"),
    ("corrupt", "broken.jpg"),
])
def test_bad_folders_raise_errors_that_name_the_problem(tmp_path, tmp_cache, breakage, message):
    root = make_image_folder(tmp_path / "images")
    if breakage == "missing":
        root = tmp_path / "nowhere"
    elif breakage == "no_test":
        for f in (root / "test").rglob("*.png"):
            f.unlink()
        for d in sorted((root / "test").rglob("*"), reverse=True):
            d.rmdir()
        (root / "test").rmdir()
    elif breakage == "different_classes":
        (root / "test" / "dog").rename(root / "test" / "wolf")
    elif breakage == "empty_class":
        (root / "train" / "bird").mkdir()
    elif breakage == "not_an_image":
        (root / "train" / "cat" / "notes.txt").write_text("hello")
    elif breakage == "corrupt":
        (root / "train" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(DataError, match=message):
        kdlib.load(root)


def test_a_failed_download_says_how_to_use_local_data(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError, match="ImageFolder root") as info:
        kdlib.load("cifar10", root=tmp_path)
    assert str(tmp_path) in str(info.value)


def test_augment_identity_flip_and_crop():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32)
    identity = data.identity_views(2)
    torch.testing.assert_close(data.augment(x, identity), x)
    flipped = identity.clone()
    flipped[:, 2] = 1
    torch.testing.assert_close(data.augment(x, flipped), x.flip(3))
    shifted = identity.clone()
    shifted[0, :2] = torch.tensor([6, 2])  # content moves up 2 rows and right 2 columns
    out = data.augment(x, shifted)
    torch.testing.assert_close(out[0, :, :30, 2:], x[0, :, 2:, :30])
    torch.testing.assert_close(out[1], x[1])


def test_random_views_differ_per_image():
    views = data.random_views(1000, torch.Generator().manual_seed(0))
    assert views[:, :2].min() == 0 and views[:, :2].max() == 2 * data.CROP_PADDING
    assert len(set(map(tuple, views.tolist()))) > 100


def _archive(tmp_path, root, name="images.tar.gz"):
    archive = tmp_path / name
    with tarfile.open(archive, "w:gz") as t:
        t.add(root, arcname="images")
    return archive


def test_a_truncated_archive_is_named_and_leaves_nothing_in_the_cache(tmp_path, tmp_cache):
    root = make_image_folder(tmp_path / "images", per_class=40)
    whole = _archive(tmp_path, root).read_bytes()
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="Could not extract .*cut.tar.gz.*copied again"):
        kdlib.load(truncated)
    assert not list((tmp_cache / "extracted").iterdir())  # no half-extracted folder


def test_a_zip_without_train_names_the_zip(tmp_path, tmp_cache):
    import zipfile
    archive = tmp_path / "mine.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("images/test/cat/0.png", b"")
    with pytest.raises(DataError, match=r"mine\.zip has no train/ folder"):
        kdlib.load(archive)


def test_a_damaged_decoded_cache_is_decoded_again_with_a_warning(tmp_path, tmp_cache):
    root = make_image_folder(tmp_path / "images")
    first = kdlib.load(root)
    (cached,) = (tmp_cache / "decoded").glob("*.pt")
    cached.write_bytes(b"not a tensor file")
    with pytest.warns(UserWarning, match="could not be read"):
        again = kdlib.load(root)
    assert torch.equal(again.x_train, first.x_train)


def test_a_planted_decoded_cache_runs_no_code(tmp_path, tmp_cache, monkeypatch):
    class Planted:
        def __reduce__(self):
            return (type(tmp_path).touch, (tmp_path / "ran",))
    root = make_image_folder(tmp_path / "images")
    kdlib.load(root)
    (cached,) = (tmp_cache / "decoded").glob("*.pt")
    torch.save({"x_train": Planted()}, cached)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.warns(UserWarning, match="could not be read"):
        kdlib.load(root)
    assert not (tmp_path / "ran").exists()


def test_16_bit_images_are_scaled_to_8_bits(tmp_path, tmp_cache):
    import numpy as np
    root = make_image_folder(tmp_path / "images")
    gray = np.full((32, 32), 32896, dtype=np.uint16)  # 50% of 65535
    Image.fromarray(gray).save(root / "train" / "cat" / "wide.png")
    assert Image.open(root / "train" / "cat" / "wide.png").mode.startswith("I")
    s = kdlib.load(root)
    assert s.x_train[3].unique().tolist() == [128]  # not clipped to 255 (white)


def test_an_unreadable_class_folder_is_not_called_empty(tmp_path, tmp_cache, monkeypatch):
    import os
    root = make_image_folder(tmp_path / "images")
    locked = root / "train" / "dog"
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == os.fspath(locked):  # as a folder without read permission answers
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)
    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(DataError, match="Cannot read .*dog.*Permission denied.*readable"):
        kdlib.load(root)


@pytest.mark.parametrize("n_train, n_test, message", [
    (-5, None, "n_train=-5"), (0, None, "n_train=0"), (None, 0, "n_test=0"), ("100", None, "n_train='100'"),
])
def test_sample_sizes_are_checked(n_train, n_test, message):
    with pytest.raises(kdlib.checks.ParameterError, match=message):
        kdlib.load("synthetic", n_train=n_train, n_test=n_test)


def test_the_fingerprint_is_the_content_not_the_name(tmp_path, tmp_cache):
    root = make_image_folder(tmp_path / "images")
    a = kdlib.load(root)
    copy = tmp_path / "copy"
    import shutil
    shutil.copytree(root, copy)
    assert kdlib.load(copy).fingerprint == a.fingerprint
    Image.new("RGB", (32, 32), (1, 2, 3)).save(copy / "test" / "cat" / "0.png")
    assert kdlib.load(copy).fingerprint != a.fingerprint


def test_moving_splits_keeps_their_fingerprint_without_hashing_again(monkeypatch):
    s = data.synthetic(n_train=64, n_test=32)
    known = s.fingerprint
    monkeypatch.setattr(data, "digest", lambda *a: pytest.fail("hashed again"))
    assert s.to("cpu").fingerprint == known


def test_imagenet_normalization_is_a_load_option_and_part_of_the_identity():
    plain = kdlib.load("synthetic")
    imagenet = kdlib.load("synthetic", normalization="imagenet")
    assert imagenet.mean == data.IMAGENET_MEAN and imagenet.std == data.IMAGENET_STD
    assert plain.mean != imagenet.mean and plain.fingerprint != imagenet.fingerprint
    with pytest.raises(kdlib.checks.ParameterError, match="normalization='cifar'"):
        kdlib.load("synthetic", normalization="cifar")


def test_the_test_sample_does_not_move_with_the_training_sample():
    whole = data.synthetic(n_train=400, n_test=300)
    a = whole.subset(n_train=100, n_test=50)
    b = whole.subset(n_train=300, n_test=50, n_val=60)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_test, whole.x_test[:50])  # a random sample, not the first images


def test_statistics_leave_out_the_validation_images_whatever_n_train():
    whole = data.synthetic(n_train=400, n_test=100)
    small, large = whole.subset(n_train=50, n_val=100), whole.subset(n_val=100)
    assert small.mean == large.mean and small.std == large.std  # one set per validation split
    outside = torch.ones(400, dtype=torch.bool)
    outside[large.val_index] = False
    expected = data.statistics(whole.x_train[outside])
    assert large.mean == pytest.approx(expected[0]) and large.std == pytest.approx(expected[1])
    assert large.mean != pytest.approx(whole.mean, abs=1e-6)  # the validation images are out
    assert whole.subset().mean == whole.mean  # no validation split: every training image


def test_an_images_mask_round_trips():
    index = torch.tensor([0, 3, 7, 8, 99])
    mask = data.mask_indices(data.images_mask(index, 101))
    assert mask.shape == (101,) and torch.equal(mask.nonzero().flatten(), index)


def test_a_validation_split_a_teacher_trained_on_is_refused():
    splits = data.synthetic(n_train=400, n_test=100).subset(n_val=100)
    own = data.images_mask(splits.train_index, 400)
    splits.check_unseen(own, "this teacher")  # trained outside the split: accepted
    with pytest.raises(DataError, match="trained on 100 of this run's 100 validation images"):
        splits.check_unseen(None, "a teacher of all 400 images")
    one_more = torch.cat([splits.train_index, splits.val_index[:1]])
    with pytest.raises(DataError, match="trained on 1 of"):
        splits.check_unseen(data.images_mask(one_more, 400), "this teacher")


def test_a_jpeg_copy_reencoded_at_a_lower_quality_keeps_its_layout_and_loses_detail(tmp_path, tmp_cache):
    """scripts/jpeg_quality.py measures how JPEG loss moves the reference's students; its copy must
    be the same images, names and labels, only lossier."""
    import sys
    sys.path.insert(0, str(kdlib.series.REPOSITORY / "scripts"))
    from jpeg_quality import reencode

    root = tmp_path / "images"
    generator = torch.Generator().manual_seed(0)
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            (root / split / name).mkdir(parents=True)
            for i in range(2):  # noise: detail that a low quality must lose
                pixels = torch.randint(0, 256, (32, 32, 3), generator=generator, dtype=torch.uint8).numpy()
                Image.fromarray(pixels).save(root / split / name / f"{i}.jpg", quality=95)
    archive, lower = tmp_path / "copy.tar.gz", tmp_path / "q10.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(root, arcname="images")
    reencode(archive, lower, quality=10)
    with tarfile.open(archive) as a, tarfile.open(lower) as b:
        assert sorted(m.name for m in a if m.isfile()) == sorted(m.name for m in b if m.isfile())
    original, reencoded = kdlib.load(archive), kdlib.load(lower)
    assert torch.equal(original.y_train, reencoded.y_train) and original.classes == reencoded.classes
    assert (original.x_train.float() - reencoded.x_train.float()).abs().mean() > 10


def test_a_command_ends_a_refused_input_in_one_line_and_lets_a_bug_through():
    def bad_source():
        kdlib.load("/no/such/folder")
    with pytest.raises(SystemExit, match="^python -m kdlib.bench: Data folder /no/such/folder does not exist"):
        kdlib.checks.command("python -m kdlib.bench", bad_source)
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        kdlib.checks.command("python -m kdlib.bench", lambda: 1 / 0)
