"""Datasets as uint8 tensors, and the per-batch normalization and augmentation of them.

`load(source)` returns `Splits`: the whole train and test sets as uint8 tensors (N, 3, 32, 32)
with int64 labels, decoded once and cached. Sources:

    "cifar10"            torchvision's CIFAR-10 download (the default)
    a folder             an ImageFolder root holding train/<class>/* and test/<class>/*
    a .tar.gz/.tgz/.zip  an archive of such a root (extracted once into the cache)
    "synthetic"          a small learnable dataset made on the spot, for offline smoke runs

The training engine keeps these tensors on the training device and draws batches from a
shuffled index there, normalizing and augmenting whole batches at once. That is why the
hot loop has no per-image Python and no DataLoader (see `kdlib.bench` for the difference).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tarfile
import warnings
import zipfile
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path

import torch
import torch.nn.functional as F

from . import checks
from .files import digest, load_tensors, save_tensors, source_digest

IMAGE_SIZE = 32
CROP_PADDING = 4
CROP_OFFSETS = 2 * CROP_PADDING + 1  # crop positions per axis: dy, dx in [0, 2 * CROP_PADDING]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
# normalization="imagenet": the ImageNet statistics the reference notebook normalizes with
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DOWNLOAD_TIMEOUT_S = 20
# This decoder's own version, in the decoded-image cache's key: a fix to decoding applies at once.
DATA_CODE_VERSION = source_digest(__file__)
VAL_SEED = 1    # draws the validation images (n_val), the same whatever n_train and n_test
TRAIN_SEED = 0  # draws the training sample (n_train) from the images outside the validation split
TEST_SEED = 2   # draws the test sample (n_test): its own stream, so that it never moves with n_train or n_val


class DataError(RuntimeError):
    """A data source that cannot be used; the message says which path and what to do."""


def cache_dir() -> Path:
    """Where decoded datasets and extracted archives live: $KDLIB_CACHE or ~/.cache/kdlib."""
    return Path(os.environ.get("KDLIB_CACHE", Path.home() / ".cache" / "kdlib"))


@dataclass
class Splits:
    """A dataset held as tensors: images uint8 (N, 3, 32, 32), labels int64 (N,)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    source: str = ""
    mean: tuple[float, ...] = field(default=(0.5, 0.5, 0.5))
    std: tuple[float, ...] = field(default=(0.25, 0.25, 0.25))
    # A validation split held out of the training images (`subset`'s n_val): what learning
    # curves show and what sweeps choose on, so that the test set chooses nothing.
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    # Which images of the source's training split these are (None: all of it, in order): what
    # a teacher's record says it trained on, and what a validation split is checked against.
    train_index: torch.Tensor | None = None
    val_index: torch.Tensor | None = None
    n_source_train: int | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    @cached_property
    def fingerprint(self) -> str:
        """The identity of the content (images, labels, class names) and of the normalization
        statistics, whatever the path or name it was loaded from: what records, reuse and
        caches compare."""
        content = digest(self.x_train, self.y_train, self.x_test, self.y_test,
                         *(() if self.y_val is None else (self.x_val, self.y_val)))
        return hashlib.sha1(f"{content}\n{chr(10).join(self.classes)}\n{self.mean}{self.std}".encode()).hexdigest()[:16]

    def tensors(self) -> dict:
        """The fields as a dict of tensors and plain values (what the decoded cache stores)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to(self, device) -> "Splits":
        moved = replace(self, **{k: getattr(self, k).to(device)
                                 for k in ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val")
                                 if getattr(self, k) is not None})
        if "fingerprint" in self.__dict__:  # the same content: no need to hash it again
            moved.__dict__["fingerprint"] = self.fingerprint
        return moved

    def subset(self, n_train: int | None = None, n_test: int | None = None,
               n_val: int | None = None) -> "Splits":
        """A fixed random sample of n_train training and n_test test images (None keeps a
        split whole), and n_val validation images held out of the training split before the
        training sample is drawn, so the two never share an image. Random, because an
        ImageFolder lists its images class by class: its first 10,000 images would be two
        classes only. Fixed, so every run gets the same; each draw has its own generator
        (VAL_SEED, TRAIN_SEED, TEST_SEED), so that one size never moves another's images.

        The normalization statistics are those of every training image outside the
        validation split, whatever n_train: the images a teacher of this validation split
        may train on, so that it and its students, on any sample of them, normalise alike."""
        total = len(self.y_train)
        pool = torch.arange(total)
        val = None
        if n_val:
            if n_val >= total:
                raise DataError(f"n_val={n_val} would hold out all {total} training images: "
                                "choose an n_val smaller than the training split.")
            held_out = torch.randperm(total, generator=torch.Generator().manual_seed(VAL_SEED))
            val, pool = held_out[:n_val].sort().values, held_out[n_val:].sort().values
        # A sample larger than what there is would silently train (or test) on less than asked.
        if n_train is not None and n_train > len(pool):
            outside = f"{len(pool)} lie outside the {n_val}-image validation split" if n_val else f"there are {total}"
            raise DataError(f"n_train={n_train} asks for more training images than there are ({outside}): "
                            f"choose n_train <= {len(pool)}, or None for all of them"
                            + (", or a smaller n_val." if n_val else "."))
        if n_test is not None and n_test > len(self.y_test):
            raise DataError(f"n_test={n_test} asks for more test images than the {len(self.y_test)} there are: "
                            f"choose n_test <= {len(self.y_test)}, or None for all of them.")
        train = pool[_sample(n_train, len(pool), TRAIN_SEED)]
        test = _sample(n_test, len(self.y_test), TEST_SEED)
        mean, std = statistics(self.x_train[pool]) if val is not None else (self.mean, self.std)
        source = self.train_index if self.train_index is not None else torch.arange(total)  # a subset of a subset
        return replace(self, x_train=self.x_train[train], y_train=self.y_train[train],
                       x_test=self.x_test[test], y_test=self.y_test[test],
                       x_val=None if val is None else self.x_train[val],
                       y_val=None if val is None else self.y_train[val],
                       mean=mean, std=std, train_index=source[train], val_index=None if val is None else source[val],
                       n_source_train=self.n_source_train or total)

    def check_unseen(self, trained_on: str | None, who: str) -> None:
        """Refuse a validation split that shares images with what `who` trained on
        (`trained_on`: its `images_mask`; None: it trained on the whole training split)."""
        if self.val_index is None:
            return
        seen = torch.ones(self.n_source_train, dtype=torch.bool) if trained_on is None else mask_indices(trained_on)
        if len(seen) != self.n_source_train:
            raise DataError(f"{who} trained on a training split of {len(seen)} images; this data's has "
                            f"{self.n_source_train}. Use the data it was trained on, or train it here.")
        shared = int(seen[self.val_index].sum())
        if shared:
            raise DataError(f"{who} trained on {shared} of this run's {len(self.val_index)} validation images, "
                            "so validation would not be held out from it (what it chooses or teaches "
                            "has seen them). Use a teacher trained without them (e.g. weights/teacher-tutorial.pt "
                            "with n_val 5000), set n_val = None, or train the teacher in 01 on this split.")

    def showcase(self, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        """n test images and labels for pictures, one class after another (the first image
        of each class, then the second, ...): a folder's first n would all be airplanes."""
        labels = self.y_test.cpu()
        rank = torch.zeros_like(labels)  # how many earlier test images share the label
        for c in range(self.num_classes):
            where = labels == c
            rank[where] = torch.arange(int(where.sum()))
        index = torch.argsort(rank * self.num_classes + labels)[:n]
        return self.x_test[index], self.y_test[index]

    def __repr__(self) -> str:
        val = "" if self.y_val is None else f"{len(self.y_val)} val, "
        return (f"Splits({self.source!r}: {len(self.y_train)} train, {val}{len(self.y_test)} test, "
                f"{self.num_classes} classes, {tuple(self.x_train.shape[1:])} uint8 "
                f"on {self.device})")


def load(source: str | os.PathLike = "cifar10", root: str | os.PathLike = "data",
         n_train: int | None = None, n_test: int | None = None,
         normalization: str = "data", n_val: int | None = None) -> Splits:
    """Load a dataset as `Splits` (see the module docstring for the sources).

    root: where torchvision downloads CIFAR-10. n_train, n_test: keep a fixed random sample
    of each split (handy for short runs); n_val: hold out a fixed random sample of that many
    training images as the validation split (`Splits.x_val`). normalization: "data", the per-channel mean and
    std of the whole training split, or "imagenet", ImageNet's (as the reference notebook).
    """
    checks.check({"n_train": n_train, "n_test": n_test, "n_val": n_val, "normalization": normalization},
                 where="kdlib.load")
    name = str(source)
    if name == "cifar10":
        splits = _load_cifar10(Path(root))
    elif name == "synthetic":
        splits = synthetic()
    else:
        path = Path(source).expanduser()
        if name.endswith(ARCHIVE_SUFFIXES):
            splits = _load_image_folder(_extract(path), origin=path)
        else:
            splits = _load_image_folder(path)
    if normalization == "imagenet":
        splits = replace(splits, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return splits.subset(n_train, n_test, n_val)


# ----------------------------------------------------------------------------- sources

def _load_cifar10(root: Path) -> Splits:
    from torchvision.datasets import CIFAR10  # imported here: slow, and only this source needs it

    old_timeout = socket.getdefaulttimeout()
    # torchvision's download has no timeout of its own; without one a firewalled machine
    # hangs instead of failing at once with the advice below.
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        train = CIFAR10(root, train=True, download=True)
        test = CIFAR10(root, train=False, download=True)
    except (OSError, RuntimeError) as error:  # URLError, timeouts and checksum failures
        raise DataError(
            f"Could not download CIFAR-10 into {root.resolve()}: {error}.\n"
            "Without network access, point the data source at a local copy instead: an "
            "ImageFolder root with train/<class>/ and test/<class>/ folders, or a .tar.gz of "
            "one, e.g. data='../shared/data/cifar10-jpeg.tar.gz' in a notebook's parameters "
            "cell, or `python -m kdlib.series -p data PATH`.") from error
    finally:
        socket.setdefaulttimeout(old_timeout)

    def as_tensors(dataset):
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
        return images, torch.tensor(dataset.targets, dtype=torch.int64)

    x_train, y_train = as_tensors(train)
    x_test, y_test = as_tensors(test)
    return _with_statistics(Splits(x_train, y_train, x_test, y_test, list(train.classes),
                                   source="CIFAR-10 (torchvision)"))


def _extract(archive: Path) -> Path:
    """Extract an archive once into the cache; returns the folder holding train/ and test/."""
    if not archive.is_file():
        raise DataError(f"Data archive {archive} does not exist. Check the path, or pass the "
                        "folder that holds train/ and test/ directly.")
    # Keyed by content, not path or mtime: a re-copied archive reuses its extraction.
    with open(archive, "rb") as f:
        key = hashlib.file_digest(f, "sha1").hexdigest()[:10]  # Python 3.11 (pyproject's floor)
    name = archive.name
    for suffix in ARCHIVE_SUFFIXES:
        name = name.removesuffix(suffix)
    target = cache_dir() / "extracted" / f"{name}-{key}"
    if not target.is_dir():
        partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        try:
            if archive.name.endswith(".zip"):
                with zipfile.ZipFile(archive) as z:
                    z.extractall(partial)
            else:
                with tarfile.open(archive) as t:
                    t.extractall(partial, filter="data")
        except BaseException as error:  # Ctrl-C too: no half-extracted folder stays behind
            shutil.rmtree(partial, ignore_errors=True)
            if not isinstance(error, Exception):
                raise
            # EOFError, zlib.error, BadGzipFile, TarError, BadZipFile, OSError, ...
            raise DataError(f"Could not extract {archive} ({type(error).__name__}: {error}). Is it "
                            "a complete .tar.gz/.zip of an ImageFolder root? A truncated copy "
                            "must be copied again.") from None
        try:
            partial.rename(target)  # only a complete extraction ever carries the final name
        except OSError:  # another process finished the same extraction first
            shutil.rmtree(partial, ignore_errors=True)
    # Accept an archive whose content is either train/ + test/ or one folder holding them.
    entries = [p for p in target.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and not (target / "train").exists():
        return entries[0]
    return target


def _load_image_folder(root: Path, origin: Path | None = None) -> Splits:
    """Decode an ImageFolder root into tensors, once; later calls read the cached tensors.
    origin: the archive the root was extracted from, which error messages name instead of
    the cache folder."""
    where = origin or root
    if not root.is_dir():
        raise DataError(f"Data folder {root} does not exist. Expected an ImageFolder root with "
                        "train/<class>/ and test/<class>/ folders (or a .tar.gz of one), or "
                        "'cifar10' / 'synthetic'.")
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"{where} has no {split}/ folder. An ImageFolder root must hold "
                            f"train/<class>/ and test/<class>/ folders of images"
                            f"{' (at the top of the archive, or in its one top folder)' if origin else ''}.")
    files = {split: _list_images(root / split, where) for split in ("train", "test")}
    classes = {split: sorted(per_class) for split, per_class in files.items()}
    if classes["train"] != classes["test"]:
        raise DataError(f"{where}: train/ and test/ have different class folders "
                        f"(train: {classes['train']}, test: {classes['test']}). Give both "
                        "splits the same class folders.")

    listing = "\n".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                        for per_class in files.values() for paths in per_class.values()
                        for p in paths)
    key = hashlib.sha1(f"{root.resolve()}\n{listing}\n{DATA_CODE_VERSION}".encode()).hexdigest()[:12]
    cached = cache_dir() / "decoded" / f"{root.resolve().name}-{key}.pt"
    source = f"ImageFolder {where.name}"
    if cached.is_file():
        try:
            return replace(Splits(**load_tensors(cached)), source=source)
        except Exception as error:  # truncated, damaged or foreign: decode again
            warnings.warn(f"The decoded-image cache {cached} could not be read ({type(error).__name__}: "
                          f"{error}); decoding {where} again.", stacklevel=3)

    tensors = {}
    for split, per_class in files.items():
        tensors[f"x_{split}"], tensors[f"y_{split}"] = _decode(per_class, classes["train"], split)
    splits = _with_statistics(Splits(**tensors, classes=classes["train"], source=source))
    save_tensors(splits.tensors(), cached)
    return splits


def _list_images(split_dir: Path, where: Path) -> dict[str, list[Path]]:
    def unreadable(error: OSError):
        raise DataError(f"Cannot read {error.filename} in {where} ({error.strerror or error}). "
                        "Make it readable (e.g. chmod -R u+rX) or remove it.")

    per_class = {}
    for d in sorted(split_dir.iterdir()):
        if d.name.startswith(".") or not d.is_dir():
            continue
        paths = []
        # os.walk with onerror: Path.rglob skips folders it cannot read, which made an
        # unreadable class folder look empty.
        for folder, subfolders, names in os.walk(d, onerror=unreadable):
            subfolders[:] = sorted(n for n in subfolders if not n.startswith("."))
            paths += [Path(folder) / n for n in sorted(names) if not n.startswith(".")]
        per_class[d.name] = sorted(paths)
    if not per_class:
        raise DataError(f"{split_dir} holds no class folders. Put each class's images in "
                        f"{split_dir}/<class name>/.")
    for name, paths in per_class.items():
        if not paths:
            raise DataError(f"Class folder {split_dir / name} has no files. Add its images or "
                            "remove the folder (from train/ and test/ both).")
    return per_class


# 16-bit (and 32-bit integer) grayscale images: Pillow's convert("RGB") clips them at 255,
# which made almost every pixel white. They are scaled to 8 bits by their bit depth instead.
_WIDE_MODES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535}


def _to_rgb(image):
    from PIL import Image
    import numpy as np

    if image.mode in _WIDE_MODES:
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "I" and values.max(initial=0) <= 255:  # 8-bit values stored as "I"
            scaled = values
        else:
            scaled = values * (255 / _WIDE_MODES[image.mode])
        image = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def _decode(per_class: dict[str, list[Path]], classes: list[str], split: str):
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.functional import pil_to_tensor
    from tqdm.auto import tqdm

    paths = [(p, classes.index(c)) for c in classes for p in per_class[c]]
    images = torch.empty((len(paths), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8)
    labels = torch.tensor([label for _, label in paths], dtype=torch.int64)
    for i, (path, _) in enumerate(tqdm(paths, desc=f"decoding {split}", leave=False,
                                       mininterval=2)):
        try:
            with Image.open(path) as image:
                image = _to_rgb(image)
                if image.size != (IMAGE_SIZE, IMAGE_SIZE):
                    image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
                images[i] = pil_to_tensor(image)
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise DataError(f"Cannot read {path} as an image ({error}). Remove or replace "
                            "that file: every file in a class folder must be an image.") from error
    return images, labels


def synthetic(n_train: int = 2000, n_test: int = 500, num_classes: int = 10, seed: int = 0) -> Splits:
    """A learnable stand-in for CIFAR-10: each class is a bright square at its own place.

    Backgrounds are noise and the square's colour is random, so only the position carries
    the label - which also gives attention maps something to find.
    """
    generator = torch.Generator().manual_seed(seed)

    def make(n):
        labels = torch.arange(n) % num_classes
        labels = labels[torch.randperm(n, generator=generator)]
        images = torch.randint(0, 96, (n, 3, IMAGE_SIZE, IMAGE_SIZE), generator=generator,
                               dtype=torch.uint8)
        colours = torch.randint(128, 256, (n, 3), generator=generator, dtype=torch.uint8)
        for c in range(num_classes):  # a 3x4 grid of 8x8 squares, one place per class
            row, col = 2 + 10 * (c // 4), 1 + 8 * (c % 4)
            mask = labels == c
            images[mask, :, row:row + 8, col:col + 6] = colours[mask, :, None, None]
        return images, labels

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    classes = [f"class{c}" for c in range(num_classes)]
    return _with_statistics(Splits(x_train, y_train, x_test, y_test, classes, source="synthetic"))


def _with_statistics(splits: Splits) -> Splits:
    mean, std = statistics(splits.x_train)
    return replace(splits, mean=mean, std=std)


def statistics(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images (N, 3, H, W), in [0, 1] units (float64 sums,
    one channel at a time: 45,000 images in float64 at once would be 1.1 GB)."""
    means, stds = [], []
    for c in range(images.shape[1]):
        x = images[:, c].to(torch.float64).div_(255)
        means.append(float(x.mean()))
        stds.append(float(x.std()))
    return tuple(means), tuple(stds)


def _sample(n: int | None, total: int, seed: int):
    """A fixed random sample of n of `total` indices, sorted (all of them: a slice)."""
    if n is None or n >= total:
        return slice(None) if n is None or n == total else torch.arange(total)
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def images_mask(index: torch.Tensor | None, total: int) -> str:
    """Which of `total` images `index` holds, as compact text (a hex bitmask): what a record
    stores of the images a model trained on."""
    mask = torch.zeros(-(-total // 8) * 8, dtype=torch.bool)
    mask[slice(None) if index is None else index] = True
    mask[total:] = False
    place = 2 ** torch.arange(7, -1, -1)
    packed = (mask.view(-1, 8).long() * place).sum(1)
    return f"{total}:" + bytes(packed.to(torch.uint8).tolist()).hex()


def mask_indices(text: str) -> torch.Tensor:
    """`images_mask`'s text back to a bool tensor of its `total` images."""
    total, hex_bits = text.split(":")
    packed = torch.tensor(list(bytes.fromhex(hex_bits)), dtype=torch.long)
    bits = (packed[:, None] >> torch.arange(7, -1, -1)) & 1
    return bits.flatten()[:int(total)].bool()


# ----------------------------------------------------------------------------- batches

def normalize(images: torch.Tensor, mean, std, channels_last: bool = True) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 standardized with per-channel mean and std."""
    mean = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    x = (images.float().div_(255) - mean).div_(std)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def random_views(n: int, generator: torch.Generator, device=None) -> torch.Tensor:
    """Random crop offsets and flips for n images: int64 (n, 3) = (dy, dx, flip).

    dy, dx in [0, 2*CROP_PADDING] index the crop in the padded image; flip is 0 or 1.
    """
    offsets = torch.randint(0, CROP_OFFSETS, (n, 2), generator=generator,
                            device=generator.device)
    flips = torch.randint(0, 2, (n, 1), generator=generator, device=generator.device)
    return torch.cat([offsets, flips], 1).to(device)


def identity_views(n: int, device=None) -> torch.Tensor:
    """The un-augmented view of n images: centre crop, no flip."""
    views = torch.zeros((n, 3), dtype=torch.int64, device=device)
    views[:, :2] = CROP_PADDING
    return views


def augment(x: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
    """Random crop (reflect-padded by 4) and horizontal flip of a whole batch, one gather.

    views: (N, 3) from `random_views`. Written by hand because torchvision's RandomCrop
    draws one crop for a whole batch tensor; this draws one per image without a Python loop.
    """
    n, _, h, w = x.shape
    padded = F.pad(x, (CROP_PADDING,) * 4, mode="reflect")
    rows = views[:, 0:1] + torch.arange(h, device=x.device)                 # (N, H)
    cols = torch.arange(w, device=x.device).expand(n, w)
    cols = torch.where(views[:, 2:3].bool(), cols.flip(1), cols) + views[:, 1:2]  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    # (N, H, W, C) viewed as (N, C, H, W) is exactly channels_last: no copy needed.
    return out.permute(0, 3, 1, 2)


def mix(x: torch.Tensor, y: torch.Tensor, num_classes: int, generators) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup for function matching (Beyer et al. 2022) on fresh views: each image blended with
    another image of its own member's rows, with w ~ U(0, 1) per image, drawn from each member's
    generator (`blend`). With fixed views the partners and weights are a table instead (`mix_table`)."""
    size = len(y) // len(generators)
    partner = torch.cat([k * size + torch.randperm(size, generator=g, device=g.device).to(y.device)
                         for k, g in enumerate(generators)])
    weight = torch.cat([torch.rand(size, generator=g, device=g.device) for g in generators]).to(x.device)
    return blend(x, x[partner], y, y[partner], weight, num_classes)


def blend(x: torch.Tensor, x_partner: torch.Tensor, y: torch.Tensor, y_partner: torch.Tensor, weight: torch.Tensor,
          num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """w x + (1 - w) x_partner per image, and the labels blended alike, as class probabilities
    (what cross-entropy then reads)."""
    w = weight.view(-1, 1, 1, 1).to(x.dtype)
    mixed = w * x + (1 - w) * x_partner
    labels = (weight[:, None] * F.one_hot(y, num_classes).float()
              + (1 - weight[:, None]) * F.one_hot(y_partner, num_classes).float())
    return mixed.contiguous(memory_format=torch.channels_last), labels


def mix_table(n: int, views: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup partners and weights for every image's fixed views: (N, V) image indices and (N, V)
    weights ~ U(0, 1), drawn view by view (each view a permutation of the images), so that the
    table for V views is the first V columns of the table for more."""
    partners, weights = zip(*[(torch.randperm(n, generator=generator), torch.rand(n, generator=generator))
                              for _ in range(views)])
    return torch.stack(partners, 1), torch.stack(weights, 1)


def view_batch(splits: Splits, index: torch.Tensor, views: torch.Tensor, augmented: bool, device) -> torch.Tensor:
    """Training images `index` in the given views, normalized (and, when `augmented`, cropped
    and flipped) on `device`: every training batch, the student's and the teacher's."""
    x = normalize(splits.x_train[index].to(device, non_blocking=True), splits.mean, splits.std)
    return augment(x, views.to(device)) if augmented else x
