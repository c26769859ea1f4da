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

from .files import write_atomic
from .methods import label
from .results import REFERENCE_UNTRAINED

DPI = 80  # every figure's own (not a global setting): notebooks carrying their outputs stay small
MIN_FONT = 8  # no text smaller than this
# Maps are drawn at their true resolution (16x16, 8x8 cells): honest about what the loss
# compares, and blocky images compress ~5x better as PNG than smooth ones at this DPI.
INTERPOLATION = "nearest"


def _figure(*grid, **options):
    """plt.subplots at the series' DPI, so that inline notebook figures stay small too."""
    return plt.subplots(*grid, dpi=DPI, **options)


def save(fig, path: str | os.PathLike) -> Path:
    """`fig` as an image file (its format from the suffix, PNG without one), written whole or not at all."""
    path = Path(path)
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format=path.suffix[1:] or "png", dpi=DPI,
                                                      bbox_inches="tight"))


def curves(histories: dict[str, list[dict]], title: str = "") -> plt.Figure:
    """Training loss and train and held-out accuracy per epoch, one line per run: validation
    accuracy where the run had a validation split, test accuracy otherwise."""
    fig, (ax_loss, ax_acc) = _figure(1, 2, figsize=(10, 3.5))
    for i, (name, history) in enumerate(histories.items()):
        color = f"C{i}"
        epochs = [h["epoch"] for h in history]
        ax_loss.plot(epochs, [h["loss"] for h in history], color=color, label=name)
        ax_acc.plot(epochs, [100 * h["train_acc"] for h in history], color=color, ls="--", alpha=.6)
        key = "val_acc" if any("val_acc" in h for h in history) else "test_acc"
        held_out = "validation" if key == "val_acc" else "test"
        tested = [h for h in history if key in h]
        ax_acc.plot([h["epoch"] for h in tested], [100 * h[key] for h in tested],
                    color=color, marker="o", ms=3, label=f"{name} ({held_out})")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title=f"accuracy: train (dashed), {held_out}")
    ax_loss.legend(fontsize=MIN_FONT)
    ax_acc.legend(fontsize=MIN_FONT)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def accuracy_bars(table, title: str | None = None, anchors: bool = False) -> plt.Figure:
    """Each student method's mean test accuracy with its std over seeds (none for one seed), on
    an axis that spans the students' own range, so that differences of a point are visible; the
    teacher as a line, or a note when it is far above. anchors: the reference notebook's and
    the PyTorch tutorial's numbers as markers, only where they are comparable (a run on all
    training images; the course's 5,000 are not). Whether a gap is larger than seed noise is
    `differences`' picture, not this one."""
    from .results import REFERENCE_SOURCE, TUTORIAL_SOURCE

    students = table[table["method"] != "teacher"].reset_index(drop=True)
    fig, ax = _figure(figsize=(max(8, 1.1 * len(students)), 4.2))  # room for every label
    x = np.arange(len(students))
    spread = students["std"].where(students["n_seeds"] > 1)
    ax.errorbar(x, students["mean"], yerr=spread, fmt="o", capsize=4, color="C0", label="this series: mean ± std")
    values = [*students["mean"] - spread.fillna(0), *students["mean"] + spread.fillna(0)]
    if anchors:
        untrained = students["method"].isin(REFERENCE_UNTRAINED).to_numpy()
        ax.scatter(x[~untrained], students["reference"][~untrained], marker="_", s=500, color="black", zorder=3,
                   label="reference (one run; see note)")
        ax.scatter(x[untrained], students["reference"][untrained], marker="_", s=500, color="gray", zorder=3,
                   label="reference, from an untrained teacher")
        if "tutorial" in students and students["tutorial"].notna().any():
            ax.scatter(x, students["tutorial"], marker="x", s=60, color="firebrick", zorder=3,
                       label="PyTorch tutorial (one run; see note)")
        values += [v for v in [*students["reference"], *students.get("tutorial", [])] if v == v]
        fig.text(0.01, -0.02, f"Reference: {REFERENCE_SOURCE}.\nTutorial: {TUTORIAL_SOURCE}.",
                 fontsize=MIN_FONT, wrap=True, va="top")
    low, high = min(values) - 1, max(values) + 1
    teacher = table.loc[table["method"] == "teacher", "mean"]
    if len(teacher):
        if teacher.iloc[0] <= high + 3:
            ax.axhline(teacher.iloc[0], color="gray", ls="--", label=f"teacher {teacher.iloc[0]:.1f}%")
            high = teacher.iloc[0] + 1
        else:
            ax.text(0.99, 0.98, f"teacher: {teacher.iloc[0]:.1f}% (above this axis)", transform=ax.transAxes,
                    ha="right", va="top", fontsize=MIN_FONT, color="gray")
    ax.set_ylim(low, high)
    ax.set_xticks(x, [f"{label(m)}\nn = {n}" for m, n in zip(students["method"], students["n_seeds"])],
                  fontsize=MIN_FONT)
    if title is None:
        title = ("Test accuracy, one seed each (no spread to show)" if (students["n_seeds"] == 1).all() else
                 "Test accuracy: mean ± std over the n seeds under each method (axis: the students' range)")
    ax.set(ylabel="test accuracy (%)", title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)  # clear of the points
    fig.tight_layout()
    return fig


def differences(comparisons) -> plt.Figure:
    """The course's main picture: each comparison's paired difference (points, mean over seeds)
    with its 95% interval; filled where it holds after Holm's correction over all of them,
    hollow where it does not; zero marked. `comparisons`: `kdlib.report.comparisons`' table."""
    rows = comparisons.iloc[::-1].reset_index(drop=True)  # the first comparison on top
    fig, ax = _figure(figsize=(7, 0.9 + 0.42 * len(rows)))
    y = np.arange(len(rows))
    for yi, row in rows.iterrows():
        holds = bool(row.get("holm", False))
        ax.errorbar(row["mean_diff"], yi, xerr=[[row["mean_diff"] - row["ci95_low"]], [row["ci95_high"] - row["mean_diff"]]],
                    fmt="o", capsize=3, color="C0" if holds else "gray", mfc="C0" if holds else "white")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, [f"{label(r.method).replace(chr(10), ' ')} − {label(r.baseline).replace(chr(10), ' ')}"
                      for r in rows.itertuples()], fontsize=MIN_FONT)
    n = int(rows["n_pairs"].max()) if len(rows) else 0
    ax.set(xlabel=f"paired difference in test accuracy (points), 95% interval over {n} seeds",
           title="Which differences hold: filled = after Holm's correction, hollow = not")
    fig.tight_layout()
    return fig


def gain_by_teacher(points) -> plt.Figure:
    """09's picture: each student's paired gain over CE (points, 95% interval) against the test
    accuracy of the teacher it learnt from, and beside it its agreement with that teacher on
    the test images. `points`: a frame with method, teacher_accuracy, mean_diff, ci95_low,
    ci95_high, holm and test_agreement (`kdlib.report.teachers`' table). One colour and marker
    per teacher, named in one legend (labels beside the points overlap where teachers lie close);
    filled where the gain holds after Holm's correction, hollow where it does not."""
    fig, (gain, agreement) = _figure(1, 2, figsize=(11, 4.6))
    markers = "osD^vP*X"
    for i, row in enumerate(points.itertuples()):
        colour, marker = f"C{i % 10}", markers[i % len(markers)]
        face = colour if bool(getattr(row, "holm", False)) else "white"
        gain.errorbar(row.teacher_accuracy, row.mean_diff, yerr=[[row.mean_diff - row.ci95_low], [row.ci95_high - row.mean_diff]],
                      fmt=marker, capsize=3, color=colour, markerfacecolor=face, markersize=7,
                      label=label(row.method).replace(chr(10), " "))
        agreement.plot(row.teacher_accuracy, row.test_agreement, marker, color=colour, markerfacecolor=face, markersize=7)
    gain.axhline(0, color="black", lw=0.8)
    gain.set(xlabel="the teacher's test accuracy (%)", ylabel="student's accuracy minus CE's (points)",
             title="KD's gain over CE, paired by seed, 95% interval\n(filled: holds after Holm; hollow: not)")
    agreement.set(xlabel="the teacher's test accuracy (%)", ylabel="agreement with its teacher (% of test images)",
                  title="fidelity: how often the student predicts what its teacher does")
    fig.legend(*gain.get_legend_handles_labels(), loc="lower center", ncol=min(4, len(points)), fontsize=MIN_FONT,
               frameon=False)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return fig


def per_class_heatmap(per_class: dict[str, list[float]], classes: list[str]) -> plt.Figure:
    """Per-class test accuracy (%) of each method, as a seaborn heatmap."""
    names = list(per_class)
    values = 100 * np.array([per_class[n] for n in names])
    fig, ax = _figure(figsize=(1 + 0.8 * len(classes), 0.9 + 0.45 * len(names)))
    sns.heatmap(values, annot=True, fmt=".0f", cmap="viridis", ax=ax, cbar_kws={"label": "%"},
                xticklabels=classes, yticklabels=[label(n) for n in names])
    ax.set_title("per-class test accuracy (%)")
    fig.tight_layout()
    return fig


def confusion_matrix(confusion, classes: list[str], title: str = "confusion matrix") -> plt.Figure:
    """Row-normalized confusion matrix (true class by row), in percent."""
    confusion = np.asarray(confusion, dtype=float)
    percent = 100 * confusion / confusion.sum(1, keepdims=True).clip(min=1)
    fig, ax = _figure(figsize=(6.5, 5.5))
    sns.heatmap(percent, annot=True, fmt=".0f", cmap="Blues", ax=ax, xticklabels=classes,
                yticklabels=classes, cbar_kws={"label": "% of true class"})
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return fig


def image_grid(images: torch.Tensor, titles: list[str], colors: list[str] | None = None,
               columns: int = 8) -> plt.Figure:
    """uint8 images (N, 3, H, W) with a title under each (e.g. prediction vs label)."""
    rows = -(-len(images) // columns)
    fig, axes = _figure(rows, columns, figsize=(1.4 * columns, 1.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.flat, images)):
        ax.imshow(image.permute(1, 2, 0).cpu().numpy())
        ax.set_title(titles[i], fontsize=MIN_FONT, color=(colors or ["black"] * len(images))[i])
    fig.tight_layout()
    return fig


def attention_grid(images: torch.Tensor, maps: dict[str, torch.Tensor], title: str = "",
                   labels: list[str] | None = None) -> plt.Figure:
    """One row per image (its class name beside it, from `labels`): the image, then each named
    map (N, H*W) drawn over it at its own resolution (the title names it, e.g. 16x16).

    Every map is a unit vector (kdlib.losses), drawn times the square root of its size, so that
    a uniform map is 1 at either stage (16x16 or 8x8): all panels share one colour scale, with
    a colour bar; a brighter cell is more attention in any panel, and a flat map looks flat.
    """
    n, names = len(images), list(maps)
    values = {name: maps[name].float().cpu() * maps[name].shape[1] ** 0.5 for name in names}
    top = max(float(v.max()) for v in values.values())
    fig, axes = _figure(n, 1 + len(names), figsize=(1.7 * (1 + len(names)) + 0.8, 1.7 * n + 0.6), squeeze=False,
                        layout="constrained")
    for i in range(n):
        image = images[i].permute(1, 2, 0).cpu().numpy()
        axes[i, 0].imshow(image)
        if labels:
            axes[i, 0].set_ylabel(labels[i], fontsize=MIN_FONT + 1)
        for j, name in enumerate(names, start=1):
            m = values[name][i]
            side = int(round(m.numel() ** 0.5))
            axes[i, j].imshow(image, alpha=0.35)
            shown = axes[i, j].imshow(m.view(side, side).numpy(), cmap="inferno", alpha=0.75, vmin=0, vmax=top,
                                      extent=(-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5),
                                      interpolation=INTERPOLATION)
            if i == 0:
                axes[i, j].set_title(f"{name}\n({side}×{side})", fontsize=MIN_FONT + 1)
        if i == 0:
            axes[i, 0].set_title("image", fontsize=MIN_FONT + 1)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=axes, shrink=0.6, label="attention × √(H·W): 1 = uniform (one scale, every panel)")
    fig.suptitle(title)
    return fig


def temperature_effect(logits: torch.Tensor, classes: list[str],
                       temperatures=(1, 2, 4, 8), labels: list[str] | None = None) -> plt.Figure:
    """softmax(z / T) of a few images' logits at several temperatures: the soft targets."""
    n = len(logits)
    fig, axes = _figure(n, len(temperatures), figsize=(2.6 * len(temperatures), 1.9 * n),
                             squeeze=False, sharey=True)
    for i in range(n):
        for j, T in enumerate(temperatures):
            p = torch.softmax(logits[i].float() / T, 0).numpy()
            ax = axes[i, j]
            ax.bar(range(len(classes)), p, color=sns.color_palette("deep", len(classes)))
            ax.set_ylim(0, 1)
            ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=MIN_FONT)
            if i == 0:
                ax.set_title(f"T = {T}", fontsize=MIN_FONT + 1)
            if j == 0:
                ax.set_ylabel(labels[i] if labels else f"image {i}", fontsize=MIN_FONT)
    fig.suptitle("teacher soft targets softmax(z/T): higher T shows more of what it knows about wrong classes",
                 fontsize=9)
    fig.tight_layout()
    return fig


SWEEP_SPAN = 6.0


def sweep(runs, parameter: str, title: str = "", baseline: float | None = None,
          logx: bool = False, held_out: str = "validation") -> plt.Figure:
    """Accuracy against one hyperparameter (mean ± std over seeds, every seed's run as a dot),
    with the CE baseline as a line. `runs`: the frame `kdlib.experiment.sweep` returns;
    `held_out`: which split its accuracy is of (sweeps choose on validation)."""
    stats = runs.groupby(parameter)["accuracy"].agg(["mean", "std"]).reset_index()
    fig, ax = _figure(figsize=(4.5, 3.2))
    ax.errorbar(stats[parameter], stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3,
                label="mean ± std" if runs["seed"].nunique() > 1 else "one seed")
    ax.scatter(runs[parameter], runs["accuracy"], s=18, color="C1", alpha=0.8, zorder=3, label="each seed")
    if baseline is not None:
        ax.axhline(baseline, color="gray", ls="--", label="CE baseline")
    positive = [v for v in stats[parameter] if v > 0]
    if logx and positive:  # symlog: 0 (e.g. beta = 0) stays on the axis
        ax.set_xscale("symlog", linthresh=min(positive))
    ax.set_xticks(stats[parameter], [f"{v:g}" for v in stats[parameter]])  # the swept values
    ax.minorticks_off()
    # At least SWEEP_SPAN points of accuracy on the axis: a zoomed axis makes a gap the size of
    # seed noise look like a trend; the dots show each seed's run.
    low, high = runs["accuracy"].min(), runs["accuracy"].max()
    if baseline is not None:
        low, high = min(low, baseline), max(high, baseline)
    middle, half = (low + high) / 2, max(high - low, SWEEP_SPAN) / 2 + 0.5
    ax.set_ylim(middle - half, middle + half)
    ax.set(xlabel=parameter, ylabel=f"{held_out} accuracy (%)", title=title)
    ax.legend(fontsize=MIN_FONT)
    fig.tight_layout()
    return fig

