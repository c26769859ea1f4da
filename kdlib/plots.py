"""Figures of the series: curves, accuracy bars, heatmaps, attention grids, temperature.

Every function returns a matplotlib Figure; `save(fig, path)` writes it as a PNG of modest
size, so that notebooks carrying their outputs stay small.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

from .results import ORDER, REFERENCE

DPI = 80
# Maps are drawn at their true resolution (16x16, 8x8 cells): honest about what the loss
# compares, and blocky images compress ~5x better as PNG than smooth ones at this DPI.
INTERPOLATION = "nearest"
plt.rcParams["figure.dpi"] = DPI  # inline notebook figures too, so that notebooks stay small
LABELS = {"teacher": "teacher", "ce": "CE", "kd": "KD", "kd_untrained": "KD from\nuntrained",
          "ls": "label\nsmoothing", "grad_at": "grad AT", "act_at": "act AT", "kd_grad_at": "KD + grad AT"}


def save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def curves(histories: dict[str, list[dict]], title: str = "") -> plt.Figure:
    """Training loss and train/test accuracy per epoch, one line per run."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    for i, (name, history) in enumerate(histories.items()):
        color = f"C{i}"
        epochs = [h["epoch"] for h in history]
        ax_loss.plot(epochs, [h["loss"] for h in history], color=color, label=name)
        ax_acc.plot(epochs, [100 * h["train_acc"] for h in history], color=color, ls="--", alpha=.6)
        tested = [h for h in history if "test_acc" in h]
        ax_acc.plot([h["epoch"] for h in tested], [100 * h["test_acc"] for h in tested],
                    color=color, marker="o", ms=3, label=f"{name} (test)")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy: train (dashed), test")
    ax_loss.legend(fontsize=8)
    ax_acc.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def accuracy_bars(table, title: str | None = None) -> plt.Figure:
    """Bars of mean accuracy with std error bars (none for one seed), the reference numbers as
    markers. The axis starts at 0, so that bar lengths compare honestly; the paired
    differences table, not this picture, says whether a gap is larger than seed noise."""
    from .results import REFERENCE_SOURCE

    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(table)), 4.2))  # room for every label
    x = np.arange(len(table))
    ax.bar(x, table["mean"], yerr=table["std"].where(table["n_seeds"] > 1), capsize=4,
           color=sns.color_palette("deep", len(table)), label="this series")
    ax.scatter(x, table["reference"], marker="_", s=600, color="black", zorder=3,
               label="reference (one run; see note)")
    for xi, m in enumerate(table["mean"]):
        ax.text(xi, m / 2, f"{m:.1f}", ha="center", fontsize=9, color="white", weight="bold")
    ax.set_ylim(0, 100)
    ax.set_xticks(x, [f"{LABELS.get(m, m)}\nn = {n}" for m, n in zip(table["method"], table["n_seeds"])],
                  fontsize=8)
    if title is None:
        title = ("Test accuracy, one seed each (no spread to show)" if (table["n_seeds"] == 1).all() else
                 "Test accuracy: mean ± std over the n seeds under each bar")
    ax.set(ylabel="test accuracy (%)", title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)  # clear of bars and markers
    fig.text(0.01, -0.02, "Reference: " + REFERENCE_SOURCE + ".", fontsize=6.5, wrap=True, va="top")
    fig.tight_layout()
    return fig


def per_class_heatmap(per_class: dict[str, list[float]], classes: list[str]) -> plt.Figure:
    """Per-class test accuracy (%) of each method, as a seaborn heatmap."""
    names = list(per_class)
    values = 100 * np.array([per_class[n] for n in names])
    fig, ax = plt.subplots(figsize=(1 + 0.8 * len(classes), 0.9 + 0.45 * len(names)))
    sns.heatmap(values, annot=True, fmt=".0f", cmap="viridis", ax=ax, cbar_kws={"label": "%"},
                xticklabels=classes, yticklabels=[LABELS.get(n, n) for n in names])
    ax.set_title("per-class test accuracy (%)")
    fig.tight_layout()
    return fig


def confusion_matrix(confusion, classes: list[str], title: str = "confusion matrix") -> plt.Figure:
    """Row-normalized confusion matrix (true class by row), in percent."""
    confusion = np.asarray(confusion, dtype=float)
    percent = 100 * confusion / confusion.sum(1, keepdims=True).clip(min=1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    sns.heatmap(percent, annot=True, fmt=".0f", cmap="Blues", ax=ax, xticklabels=classes,
                yticklabels=classes, cbar_kws={"label": "% of true class"})
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return fig


def image_grid(images: torch.Tensor, titles: list[str], colors: list[str] | None = None,
               columns: int = 8) -> plt.Figure:
    """uint8 images (N, 3, H, W) with a title under each (e.g. prediction vs label)."""
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.4 * columns, 1.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.flat, images)):
        ax.imshow(image.permute(1, 2, 0).cpu().numpy())
        ax.set_title(titles[i], fontsize=7, color=(colors or ["black"] * len(images))[i])
    fig.tight_layout()
    return fig


def attention_grid(images: torch.Tensor, maps: dict[str, torch.Tensor],
                   title: str = "") -> plt.Figure:
    """One row per image: the image, then each named map (N, H*W) upsampled over it.

    maps: e.g. {"teacher stage 1": ..., "student stage 1": ...}; each map is shown on its
    own colour scale, since only where it is high matters.
    """
    n, names = len(images), list(maps)
    fig, axes = plt.subplots(n, 1 + len(names), figsize=(1.6 * (1 + len(names)), 1.6 * n), squeeze=False)
    for i in range(n):
        image = images[i].permute(1, 2, 0).cpu().numpy()
        axes[i, 0].imshow(image)
        for j, name in enumerate(names, start=1):
            m = maps[name][i].float().cpu()
            side = int(round(m.numel() ** 0.5))
            axes[i, j].imshow(image, alpha=0.35)
            axes[i, j].imshow(m.view(side, side).numpy(), cmap="inferno", alpha=0.75,
                              extent=(-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5),
                              interpolation=INTERPOLATION)
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
        if i == 0:
            axes[i, 0].set_title("image", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def temperature_effect(logits: torch.Tensor, classes: list[str],
                       temperatures=(1, 2, 4, 8), labels: list[str] | None = None) -> plt.Figure:
    """softmax(z / T) of a few images' logits at several temperatures: the soft targets."""
    n = len(logits)
    fig, axes = plt.subplots(n, len(temperatures), figsize=(2.6 * len(temperatures), 1.9 * n),
                             squeeze=False, sharey=True)
    for i in range(n):
        for j, T in enumerate(temperatures):
            p = torch.softmax(logits[i].float() / T, 0).numpy()
            ax = axes[i, j]
            ax.bar(range(len(classes)), p, color=sns.color_palette("deep", len(classes)))
            ax.set_ylim(0, 1)
            ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=6)
            if i == 0:
                ax.set_title(f"T = {T}", fontsize=9)
            if j == 0:
                ax.set_ylabel(labels[i] if labels else f"image {i}", fontsize=8)
    fig.suptitle("teacher soft targets softmax(z/T): higher T shows more of what it knows about wrong classes",
                 fontsize=9)
    fig.tight_layout()
    return fig


def sweep(runs, parameter: str, title: str = "", baseline: float | None = None,
          logx: bool = False) -> plt.Figure:
    """Test accuracy against one hyperparameter (mean ± std over seeds, every run as a dot),
    with the CE baseline as a line. `runs`: the frame `kdlib.experiment.sweep` returns."""
    stats = runs.groupby(parameter)["accuracy"].agg(["mean", "std"]).reset_index()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.errorbar(stats[parameter], stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3,
                label="mean ± std" if runs["seed"].nunique() > 1 else "one seed")
    ax.scatter(runs[parameter], runs["accuracy"], s=8, color="C0", alpha=0.4)
    if baseline is not None:
        ax.axhline(baseline, color="gray", ls="--", label="CE baseline")
    positive = [v for v in stats[parameter] if v > 0]
    if logx and positive:  # symlog: 0 (e.g. beta = 0) stays on the axis
        ax.set_xscale("symlog", linthresh=min(positive))
    ax.set_xticks(stats[parameter], [f"{v:g}" for v in stats[parameter]])  # the swept values
    ax.minorticks_off()
    ax.set(xlabel=parameter, ylabel="test accuracy (%)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


__all__ = ["save", "curves", "accuracy_bars", "per_class_heatmap", "confusion_matrix",
           "image_grid", "attention_grid", "temperature_effect", "sweep", "ORDER", "REFERENCE"]
