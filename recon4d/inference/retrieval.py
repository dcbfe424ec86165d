"""Image similarity for retrieval pair graphs (`retrieval-Na-k`, algorithms-spec §4.6).

With a MASt3R retrieval model (`recon4d.models.retrieval`): ASMK over each image's selected,
whitened encoder tokens, scored by the `asmk` package (binary kernel, 1 assignment for the
database and 5 for queries, alpha 3, threshold 0, as the reference). Without one, a weight-free
fallback: one global descriptor per image, the mean of its L2-normalised encoder tokens, and
cosine similarity. Encoder tokens are computed once per image (docs/retrieval.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from recon4d.errors import Recon4dError
from recon4d.inference.engine import EncoderCache, resolve_device
from recon4d.models.precision import autocast_context

if TYPE_CHECKING:
    from recon4d.models.retrieval import Retriever

# the reference's ASMK settings (mast3r/retrieval/processor.py), CPU faiss index
ASMK_PARAMS = {
    "index": {"gpu_id": None},
    "build_ivf": {"kernel": {"binary": True}, "ivf": {"use_idf": False},
                  "quantize": {"multiple_assignment": 1}, "aggregate": {}},
    "query_ivf": {"quantize": {"multiple_assignment": 5}, "aggregate": {},
                  "search": {"topk": None},
                  "similarity": {"similarity_threshold": 0.0, "alpha": 3.0}},
}


def pooled_descriptors(tokens: torch.Tensor) -> torch.Tensor:
    """Encoder tokens (N, T, D) or (T, D) -> L2-normalised global descriptors (N, D) (N = 1 for
    one image): the mean of the L2-normalised tokens, so every patch counts once whatever its
    norm, normalised again."""
    if tokens.ndim == 2:
        tokens = tokens[None]
    if tokens.ndim != 3 or tokens.shape[1] == 0:
        raise Recon4dError(f"pooled descriptors need tokens (N, T, D) or (T, D) with T >= 1, "
                           f"got shape {tuple(tokens.shape)}")
    tokens = F.normalize(tokens.float(), dim=-1)
    return F.normalize(tokens.mean(dim=1), dim=-1)


def similarity(desc_a: torch.Tensor, desc_b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity (Na, Nb) of L2-normalised descriptors (Na, D) and (Nb, D)."""
    if desc_a.ndim != 2 or desc_b.ndim != 2 or desc_a.shape[1] != desc_b.shape[1]:
        raise Recon4dError(f"similarity needs descriptors (Na, D) and (Nb, D), got "
                           f"{tuple(desc_a.shape)} and {tuple(desc_b.shape)}")
    return desc_a.float() @ desc_b.float().T


def asmk_similarity(features: Sequence[np.ndarray], centroids: np.ndarray) -> np.ndarray:
    """(N, N) ASMK scores of N images' local features (T_i, D) against each other (row: query
    image, column: database image; not symmetric) with codebook `centroids` (K, D)."""
    try:
        from asmk import asmk_method, codebook, index
    except ImportError:
        raise Recon4dError("retrieval with a MASt3R retrieval checkpoint needs the asmk "
                           "package: pip install asmk faiss-cpu") from None
    book = codebook.Codebook(index.initialize_index(None), size=len(centroids))
    book.index(np.ascontiguousarray(centroids, dtype=np.float32))
    method = asmk_method.ASMKMethod(ASMK_PARAMS, {}, codebook=book)
    feats = np.ascontiguousarray(np.concatenate(features), dtype=np.float32)
    ids = np.repeat(np.arange(len(features)), [len(f) for f in features])
    database = method.build_ivf(feats, ids)
    _, query_ids, ranks, ranked = database.query_ivf(feats, ids)
    scores = np.empty_like(ranked)
    scores[np.arange(len(ranks))[:, None], ranks] = ranked
    return scores[np.argsort(query_ids)]


@torch.inference_mode()
def image_similarity(model: Any, views: Sequence[dict], retriever: Retriever | None = None,
                     device: str | torch.device | None = None, batch_size: int = 8,
                     dtype: str = "fp32",
                     encoder_cache: EncoderCache | None = None) -> np.ndarray:
    """(N, N) similarity of N views (`recon4d.io.load_images` dicts) from `model`'s encoder
    (the pair network): ASMK scores with `retriever`, else cosine similarity of pooled tokens.

    Each image is encoded once, same-size images about `batch_size` at a time, into
    `encoder_cache` when given: pass the same cache to `infer_pairs` and the pairs of the
    retrieval graph reuse these tokens instead of encoding the images again.
    """
    if not callable(getattr(model, "encode", None)):
        raise Recon4dError(f"retrieval similarity needs the pair network's encoder; "
                           f"{type(model).__name__} has no encode()")
    dev = resolve_device(model, device)
    cache = encoder_cache if encoder_cache is not None else EncoderCache()
    cache.fill(model, views, np.arange(len(views)), dev, autocast_context(dtype, dev),
               lambda height, width: max(1, batch_size // 2))
    tokens = cache.feats
    if retriever is None:
        desc = torch.cat([pooled_descriptors(t) for t in tokens])
        return similarity(desc, desc).double().cpu().numpy()
    head_device = next(retriever.head.parameters(), torch.empty(0)).device
    features = [retriever.head(t.to(head_device))[0][0].cpu().numpy() for t in tokens]
    return asmk_similarity(features, retriever.centroids)
