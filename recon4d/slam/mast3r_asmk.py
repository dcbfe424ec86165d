"""The keyframe database of the MASt3R-style SLAM with MASt3R's retrieval model: ASMK over the
retrieval head's local features, grown one keyframe at a time (algorithms-spec §6, §8.4).

A frame's features are the head (`recon4d.models.retrieval.RetrievalHead`) applied to the
encoder tokens the stream already has (`encoder_tokens`), each assigned to its 5 nearest
codebook centroids (torch, on the head's device). A query aggregates them with 5 assignments,
a keyframe is added with 1 (the nearest), as the reference's ASMK settings
(`recon4d.inference.retrieval.ASMK_PARAMS`: binary kernel, alpha 3, threshold 0, no idf). The
`asmk` package's inverted file grows in place (`IVF.add` with the next image id) and scores a
query against every keyframe added so far, so a query's scores equal the offline
`asmk_similarity` row of the same features. Kept per keyframe: its aggregated binary residuals
(one per visual word, dim / 8 bytes each).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from recon4d.errors import CheckpointError, Recon4dError
from recon4d.inference.retrieval import ASMK_PARAMS
from recon4d.models.retrieval import Retriever
from recon4d.slam.mast3r_retrieval import best_scores, encoder_tokens

ASMK_MIN_SCORE = 5e-3  # MASt3R-SLAM's threshold on ASMK scores of retrieved keyframes
DATABASE_ASSIGNMENTS = ASMK_PARAMS["build_ivf"]["quantize"]["multiple_assignment"]
QUERY_ASSIGNMENTS = ASMK_PARAMS["query_ivf"]["quantize"]["multiple_assignment"]
SIMILARITY = ASMK_PARAMS["query_ivf"]["similarity"]


@dataclass
class AsmkFeatures:
    """A frame's local features (n, dim) float32 and the ids (n, QUERY_ASSIGNMENTS) of their
    nearest codebook centroids, nearest first."""

    features: np.ndarray
    words: np.ndarray


def check_token_width(retriever: Retriever, width: int, what: str) -> None:
    """CheckpointError unless the retrieval head takes `width`-d tokens (`what` gives them)."""
    config = retriever.head.config
    if width != config.backbone_dim:
        made_for = f" (it was made for {config.pretrained})" if config.pretrained else ""
        raise CheckpointError(f"{retriever.path}: the retrieval head takes "
                              f"{config.backbone_dim}-d encoder tokens but {what} gives "
                              f"{width}-d ones{made_for}")


def asmk_modules() -> tuple[ModuleType, ModuleType, ModuleType]:
    """The `asmk` package's codebook, inverted_file and kernel modules, or a Recon4dError
    saying how to install it."""
    try:
        from asmk import codebook, inverted_file, kernel
    except ImportError:
        raise Recon4dError("--retrieval-weights needs the asmk package (extra 'retrieval': "
                           "pip install asmk faiss-cpu)") from None
    return codebook, inverted_file, kernel


class AsmkKeyframeDatabase:
    """ASMK scores of a query frame against the keyframes added so far (module doc); keyframes
    scoring below `min_score` (default `ASMK_MIN_SCORE`) are not retrieved."""

    def __init__(self, retriever: Retriever, min_score: float | None = None) -> None:
        codebook, inverted_file, kernel = asmk_modules()
        self.retriever = retriever
        self.min_score = ASMK_MIN_SCORE if min_score is None else min_score
        centroids = retriever.centroids
        book = codebook.Codebook(None, size=len(centroids))
        book.centroids = centroids  # the kernel reads the centroids only (no faiss index)
        self._kernel = kernel.ASMKKernel(book, binary=True)
        self._ivf = inverted_file.IVF.initialize_empty(codebook_size=len(centroids),
                                                       use_idf=False)
        self._device = next(retriever.head.parameters(), torch.empty(0)).device
        self._centroids = torch.from_numpy(centroids).to(self._device)
        self._half_norms = (self._centroids ** 2).sum(1) / 2
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @torch.inference_mode()
    def describe(self, code: Any, desc: Tensor) -> AsmkFeatures:
        """The head's local features of a frame and their nearest centroids."""
        tokens = encoder_tokens(code, desc)
        check_token_width(self.retriever, tokens.shape[-1], "the stream's network")
        features = self.retriever.head(tokens[None].to(self._device))[0][0].float()
        return AsmkFeatures(features.cpu().numpy(), self._nearest(features).cpu().numpy())

    def _nearest(self, features: Tensor) -> Tensor:
        """(n, QUERY_ASSIGNMENTS) ids of the nearest centroids (squared L2), nearest first:
        the largest q . c - |c|^2 / 2 (|q - c|^2 less the row's constant |q|^2, halved)."""
        count = min(QUERY_ASSIGNMENTS, len(self._centroids))
        closeness = (features @ self._centroids.T).sub_(self._half_norms)
        return torch.topk(closeness, count, dim=1).indices

    def add(self, descriptor: AsmkFeatures) -> None:
        """Index the next keyframe (each feature in its nearest visual word)."""
        agg, words = self._kernel.aggregate_image(descriptor.features,
                                                  descriptor.words[:, :DATABASE_ASSIGNMENTS])
        self._ivf.add(agg, words, np.full(len(words), self._count))
        self._count += 1

    def query(self, descriptor: AsmkFeatures, k: int,
              exclude: set[int] = frozenset()) -> list[tuple[int, float]]:
        """Up to `k` (keyframe id, ASMK score) at least `min_score`, best first."""
        if not self._count:
            return []
        agg, words = self._kernel.aggregate_image(descriptor.features, descriptor.words)
        ranks, ranked = self._ivf.search(agg, words, topk=None, similarity_func=(
            lambda vec, vecs, ids: self._kernel.similarity(vec, vecs, ids, **SIMILARITY)))
        scores = np.empty(self._count)
        scores[ranks] = ranked
        return best_scores(torch.from_numpy(scores), k, self.min_score, exclude)
