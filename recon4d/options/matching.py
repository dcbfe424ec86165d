"""Options of `recon4d match`: the MASt3R network and the matching itself."""

from __future__ import annotations

from dataclasses import dataclass

from recon4d.options.choices import (
    BACKGROUND_COLOURS,
    CHECKPOINT_HELP,
    CONF_MODES,
    DEFAULT_BLOCK_SIZE,
    DEFAULT_MAX_ITER,
    DEVICES,
    DISTANCES,
    GRAPH_HELP,
    MASK_MODES,
    MATCH_WEIGHTS,
)
from recon4d.options.fields import (
    check_choices,
    off_or_float,
    option,
    require_at_least,
    require_model_size,
)


@dataclass(frozen=True)
class MatchNetworkOptions:
    """Network: MASt3R checkpoint, input size, pairs and device."""

    weights: str = option(MATCH_WEIGHTS, f"MASt3R checkpoint: {CHECKPOINT_HELP}",
                          metavar="CKPT")
    size: int | None = option(None, "model input size (default: from the checkpoint, 512)",
                              type=int)
    graph: str = option("complete", f"pairs to match: {GRAPH_HELP}")
    device: str | None = option(None, "default: cuda when available, else cpu", choices=DEVICES)

    def __post_init__(self) -> None:
        check_choices(self)
        require_model_size(self)


@dataclass(frozen=True)
class MatchOptions:
    """Matching: seed grid, filters and masks."""

    subsample: int = option(8, "seed grid step in pixels of the model input")
    border: int = option(3, "drop matches this close (pixels) to an image edge")
    conf_thr: float = option(0.0, "drop matches whose descriptor confidence is below this")
    min_similarity: float | None = option(None, "drop matches whose descriptors' dot product is "
                                          "below this (-1..1)", type=float)
    max_3d_error: float | None = option(0.1, "drop matches whose two predicted 3D points differ "
                                        "by more than this fraction of their depth ('off' keeps "
                                        "all)", type=off_or_float)
    mask_mode: str = option("search", "search: masks restrict the search itself; post: match the "
                            "whole images, then drop matches outside the masks",
                            choices=MASK_MODES)
    mask_erode: int = option(0, "shrink the masks by this many model pixels first")
    premask: str | None = option(None, "also paint the background this colour before the "
                                 "network (out of distribution for the network; see the "
                                 "documentation)", choices=BACKGROUND_COLOURS)
    symmetric: bool = option(True, "use only the i->j pass's descriptors (default: average both "
                             "orders)")
    min_seeds: int = option(64, "small masks: the seed grid is refined until it has this many "
                            "seeds", flag=())
    dist: str = option("dot", "descriptor distance of the search", choices=DISTANCES, flag=())
    block_size: int | None = option(DEFAULT_BLOCK_SIZE, "query rows per nearest-neighbour "
                                    "block (None: all at once)", flag=())
    max_iter: int = option(DEFAULT_MAX_ITER, "reciprocal search rounds", flag=())
    conf_mode: str = option("min", "a match's confidence: min or geometric mean of its two "
                            "descriptor confidences", choices=CONF_MODES, flag=())
    subpixel: bool = option(False, "refine each match's end in image 2 to sub-pixel precision "
                            "(parabola through the descriptor similarity); returns float pixels",
                            flag=())

    def __post_init__(self) -> None:
        check_choices(self)
        require_at_least(self, 1, "subsample", "min_seeds", "max_iter", "block_size")
        require_at_least(self, 0, "border", "mask_erode")
