"""Scene-frame retrieval from I2P correlation scores (which buffered frames to register against).

Each candidate's patch scores (1 + exp(logit), from `I2PNetwork.corr_scores`) are averaged over
the sources and patches into c, mapped to (c - 1) / c in [0, 1), and the best are kept.
"""

from __future__ import annotations

import torch


def select_scene_frames(patch_scores: torch.Tensor,
                        sel_num: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(view scores C, indices of the `sel_num` best candidates, best first) from patch scores
    C x B x S (candidate, source, patch); all C indices, sorted, when sel_num >= C."""
    mean = patch_scores.mean(dim=(1, 2))
    view_scores = (mean - 1) / mean
    return view_scores, torch.argsort(view_scores, descending=True)[:sel_num]
