"""PNG pictures of a training run: the loss curve and predictions against the truth.

Figures are drawn with matplotlib's object API (`matplotlib.figure.Figure`, saved by the Agg
canvas), never `pyplot`: no window opens, no global backend is switched, and it works on a
machine without a display. matplotlib comes with the `cli` extra; the command line imports
this module only to draw (`training.load_plots`).
"""

import os

import numpy as np
from matplotlib.figure import Figure


def loss_curve(history: dict[str, list[float]], path: str | os.PathLike, title: str = "") -> None:
    """Plots `history["loss"]` (and `history["val_loss"]` if present) per epoch, log scale.

    Args:
        history: lists of per-epoch values, as `keras.callbacks.History.history` holds them.
        path: the PNG to write.
    """
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        values = history.get(key)
        if values:
            ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=label)
    ax.set(xlabel="epoch", ylabel="loss (MSE over real steps)", yscale="log", title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100, format="png")


def prediction_plot(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    mask: np.ndarray | None,
    path: str | os.PathLike,
    r2: str,
    *,
    sequences: int = 3,
    title: str = "",
    names: list[str] | None = None,
) -> None:
    """Draws predictions against the truth.

    Left: the first `sequences` sequences over time (truth solid, prediction dashed, one
    colour per sequence). Right: every real step, predicted against true, with the diagonal.

    Args:
        y_true, y_pred: (n, T) outputs.
        mask: (n, T) bool, True at real steps; None means all.
        path: the PNG to write.
        r2: R^2 over the real steps, as the title shows it (`training.format_r2`).
        names: the sequences' names for the legend (default: their index).
    """
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    mask = np.ones(y_true.shape, bool) if mask is None else np.asarray(mask, bool)
    t, p = y_true[mask], y_pred[mask]

    fig = Figure(figsize=(11, 4), layout="constrained")
    over_time, scatter = fig.subplots(1, 2, width_ratios=(2, 1))
    for i in range(min(sequences, len(y_true))):
        steps = np.flatnonzero(mask[i])
        name = names[i] if names is not None else i
        (line,) = over_time.plot(steps, y_true[i, steps], label=f"sequence {name}")
        over_time.plot(steps, y_pred[i, steps], "--", color=line.get_color())
    title = f"{title or 'sequences'}: truth solid, prediction dashed"
    over_time.set(xlabel="time step", ylabel="y", title=title)
    over_time.legend(fontsize="small", ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    scatter.scatter(t, p, s=4, alpha=0.4)
    low, high = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    scatter.plot([low, high], [low, high], "k-", linewidth=0.8)
    scatter.set(xlabel="true y", ylabel="predicted y", title=f"all real steps, R^2 = {r2}")
    scatter.set_aspect("equal", adjustable="datalim")
    fig.savefig(path, dpi=100, format="png")
