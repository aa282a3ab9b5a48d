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


def curves_png(path, curves, xlabel, ylabel="Dice", title="", x_values=None):
    """Save line plots: `curves` maps a label to a list of y values (x = 1..n unless `x_values` maps labels)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, values in curves.items():
        xs = x_values[label] if x_values else np.arange(1, len(values) + 1)
        ax.plot(xs, values, marker="o", markersize=3, label=label)
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
