"""Pictures: segment overlays on slices and Dice curves (matplotlib, Agg backend, no display needed)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLOURS = ["#f2c14e", "#4ea5f2", "#e2557a", "#6bd68a", "#b07de8"]


def overlay_png(path, planes, title=""):
    """Save a row of slice images with segment outlines.

    Parameters
    ----------
    planes : list of (caption, image_2d, {segment_name: mask_2d})
    """
    fig, axes = plt.subplots(1, len(planes), figsize=(4.2 * len(planes), 4.6))
    for ax, (caption, image, masks) in zip(np.atleast_1d(axes), planes):
        ax.imshow(image, cmap="gray", interpolation="nearest")
        for colour, (name, mask) in zip(COLOURS, masks.items()):
            if np.any(mask):
                ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=1.2)
                ax.imshow(np.ma.masked_where(~mask.astype(bool), mask), cmap=matplotlib.colors.ListedColormap([colour]),
                          alpha=0.3, interpolation="nearest")
                ax.plot([], [], color=colour, label=name)
        ax.set_title(caption, fontsize=10)
        ax.axis("off")
    handles = np.atleast_1d(axes)[0].get_legend_handles_labels()
    if handles[0]:
        fig.legend(*handles, loc="lower center", ncol=len(handles[0]), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def curves_png(path, curves, xlabel, ylabel="Dice", title="", x_values=None, dashed=(), colours=None):
    """Save line plots: `curves` maps a label to a list of y values (x = 1..n unless `x_values` maps labels);
    labels containing one of the words in `dashed` are drawn dashed (baselines next to the tools), and `colours`
    (label -> matplotlib colour) gives related lines one colour."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, values in curves.items():
        xs = x_values[label] if x_values else np.arange(1, len(values) + 1)
        style = "--" if any(word in label for word in dashed) else "-"
        ax.plot(xs, values, style, marker="o", markersize=3, label=label, color=(colours or {}).get(label))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def bars_png(path, groups, ylabel="", title=""):
    """Save grouped bars: `groups` maps a measure name to {method: value} (one group of bars per measure)."""
    measures = list(groups)
    methods = sorted({method for values in groups.values() for method in values})
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for n, method in enumerate(methods):
        xs = np.arange(len(measures)) + (n - (len(methods) - 1) / 2) * width
        ax.bar(xs, [groups[m].get(method, np.nan) for m in measures], width, label=method,
               color=COLOURS[n % len(COLOURS)])
    ax.set_xticks(np.arange(len(measures)))
    ax.set_xticklabels(measures, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
