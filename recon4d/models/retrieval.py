"""MASt3R's image-retrieval head (MASt3R-SfM), loaded safely from its official files.

The official release is two files next to each other: `..._retrieval_trainingfree.pth` (a dict
with `model`, the head's weights without the backbone, and `args`, an argparse.Namespace) and
`..._retrieval_codebook.pkl` (ASMK's codebook state: `{"type": "Codebook", "params": {"size":
K}, "state": {"centroids": (K, D) float32}}`). The head runs on the MASt3R encoder's tokens:
an optional PCA whitening (`prewhiten`), an optional MLP projector (`hdims`, `residual`), an
optional second whitening (`postwhiten`); the `nfeat` tokens of largest L2 norm after the
projector are the image's local features (algorithms-spec §4.6). Only tensors, an
argparse.Namespace and numpy arrays are ever unpickled.
"""

from __future__ import annotations

import argparse
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from recon4d.errors import CheckpointError
from recon4d.models.loading import torch_load_safe
from recon4d.models.specs import parse_spec

CHECKPOINT_SUFFIX = "_trainingfree.pth"
CODEBOOK_SUFFIX = "_codebook.pkl"
OFFICIAL_URL = ("https://download.europe.naverlabs.com/ComputerVision/MASt3R/"
                "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric_retrieval_trainingfree.pth")
# what the codebook pickle may reference: numpy array reconstruction, nothing else
_PICKLE_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


@dataclass(frozen=True)
class RetrievalConfig:
    """The head's architecture, read from the checkpoint's `args`."""

    backbone_dim: int
    hdims: tuple[int, ...] = ()
    residual: bool = False
    prewhiten: bool = True
    postwhiten: bool = False
    nfeat: float = 300  # > 0: a count; in [-1, 0): that fraction of the tokens
    nclusters: int = 65536
    imsize: int = 512
    pretrained: str | None = None  # the backbone checkpoint the head was made for

    @property
    def dim(self) -> int:
        """Dimension of the local features."""
        return self.hdims[-1] if self.hdims else self.backbone_dim


class Whitener(nn.Module):
    """x -> (x - m) @ p in float64 (PCA whitening), result in the input's dtype."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.m = nn.Parameter(torch.zeros(1, dim, dtype=torch.float64), requires_grad=False)
        self.p = nn.Parameter(torch.eye(dim, dtype=torch.float64), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return ((x.to(torch.float64) - self.m) @ self.p).to(x.dtype)


class RetrievalHead(nn.Module):
    """Encoder tokens (B, T, D) -> the `nfeat` strongest local features (B, k, dim) and their
    L2 norms (B, k), strongest first."""

    def __init__(self, config: RetrievalConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.backbone_dim
        self.prewhiten = Whitener(dim) if config.prewhiten else nn.Identity()
        layers: list[nn.Module] = []
        for hidden in config.hdims[:-1]:
            layers += [nn.Linear(dim, hidden), nn.LayerNorm(hidden), nn.GELU()]
            dim = hidden
        if config.hdims:
            layers.append(nn.Linear(dim, config.hdims[-1]))
        self.projector = nn.Sequential(*layers) if layers else nn.Identity()
        self.postwhiten = Whitener(config.dim) if config.postwhiten else nn.Identity()

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        white = self.prewhiten(tokens.float())
        feat = self.projector(white) + (white if self.config.residual else 0.0)
        strength = feat.norm(dim=-1)
        feat = self.postwhiten(feat)
        count = self.config.nfeat
        count = int(-count * feat.shape[1]) if count < 0 else int(count)
        top, index = torch.topk(strength, min(count, feat.shape[1]), dim=1)
        return torch.gather(feat, 1, index[..., None].expand(-1, -1, feat.shape[2])), top


@dataclass
class Retriever:
    """A loaded retrieval model: the head (on its device, eval mode) and the ASMK codebook."""

    head: RetrievalHead
    centroids: np.ndarray  # (K, dim) float32
    path: Path


def load_retrieval(spec: str | Path, codebook: str | Path | None = None,
                   device: str | torch.device = "cpu") -> Retriever:
    """The retrieval head of checkpoint `spec` (a local `..._trainingfree.pth`; `file:PATH`
    works too) and its codebook (default: the `..._codebook.pkl` next to it), strictly checked.

    The official files are not on the Hugging Face Hub: a registry name or `hf-hub:` spec is
    refused with the address to download them from.
    """
    source = parse_spec(spec)
    if source.path is None or source.path.is_dir():
        raise CheckpointError(
            f"{spec}: the MASt3R retrieval model is two local files, not a Hub repository or a "
            f"folder: download {OFFICIAL_URL} and the matching {CODEBOOK_SUFFIX} next to it, "
            "then give the .pth path")
    path = source.path
    content = torch_load_safe(path)
    state = content.get("model") if isinstance(content, dict) else None
    args = content.get("args") if isinstance(content, dict) else None
    if not isinstance(state, dict) or not isinstance(args, argparse.Namespace):
        raise CheckpointError(f"{path}: not a MASt3R retrieval checkpoint: expected a dict with "
                              "a 'model' state dict and 'args' (argparse.Namespace)")
    head = RetrievalHead(_config(path, args, state))
    _load_strict(head, state, path)
    codebook_path = Path(codebook) if codebook is not None else codebook_path_for(path)
    centroids = read_codebook(codebook_path, head.config)
    return Retriever(head.to(device).eval(), centroids, path)


def codebook_path_for(path: Path) -> Path:
    """`X_retrieval_trainingfree.pth` -> `X_retrieval_codebook.pkl` (the reference's rule: the
    file name up to its last underscore, then `_codebook.pkl`)."""
    stem = path.name.rsplit("_", 1)[0] if "_" in path.name else path.stem
    return path.with_name(stem + CODEBOOK_SUFFIX)


def read_codebook(path: Path, config: RetrievalConfig) -> np.ndarray:
    """The (K, dim) float32 centroids of an ASMK codebook pickle, unpickling numpy arrays only."""
    if not path.is_file():
        raise CheckpointError(f"{path}: the retrieval codebook is missing (expected next to the "
                              f"checkpoint, named like it with {CODEBOOK_SUFFIX}); pass its path")
    try:
        with path.open("rb") as handle:
            state = _NumpyUnpickler(handle).load()
        centroids = state["state"]["centroids"]
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable ASMK codebook ({exc})") from None
    if not isinstance(centroids, np.ndarray) or centroids.ndim != 2:
        raise CheckpointError(f"{path}: the codebook's centroids are not a 2-D array")
    if centroids.shape[1] != config.dim or len(centroids) != config.nclusters:
        raise CheckpointError(f"{path}: codebook of {len(centroids)} {centroids.shape[1]}-d "
                              f"centroids, but the retrieval head gives {config.dim}-d features "
                              f"for {config.nclusters} clusters")
    return np.ascontiguousarray(centroids, dtype=np.float32)


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals needed to rebuild numpy arrays."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refused to unpickle {module}.{name} (only numpy "
                                         "arrays are allowed)")
        return super().find_class(module, name)


def _config(path: Path, args: argparse.Namespace, state: dict) -> RetrievalConfig:
    """The head's architecture from the checkpoint's args; the backbone width from the weights."""
    hdims = str(getattr(args, "hdims", "") or "")
    clusters = str(getattr(args, "nclusters", 65536))
    try:
        dims = tuple(int(x) for x in hdims.split("_")) if hdims else ()
        nfeat = float(getattr(args, "nfeat", 300))
        scale = {"k": 1024, "M": 1024**2}.get(clusters[-1:], 1)  # ASMK's "64k" sizes
        nclusters = int(clusters[:-1] if scale > 1 else clusters) * scale
    except ValueError:
        raise CheckpointError(f"{path}: unreadable args.hdims {hdims!r}, args.nfeat or "
                              f"args.nclusters {clusters!r}") from None
    if getattr(args, "featweights", "l2norm") != "l2norm":
        raise CheckpointError(f"{path}: feature weights {args.featweights!r} are not supported "
                              "(only 'l2norm', the official one)")
    width = next((v.shape[-1] for k, v in state.items()
                  if k in ("prewhiten.m", "projector.0.weight") and isinstance(v, Tensor)), None)
    if width is None:
        raise CheckpointError(f"{path}: neither prewhiten.m nor projector.0.weight is in the "
                              "state dict, so the encoder width is unknown")
    return RetrievalConfig(
        backbone_dim=int(width), hdims=dims, residual=bool(getattr(args, "residual", False)),
        prewhiten=getattr(args, "prewhiten", None) is not None,
        postwhiten=getattr(args, "postwhiten", None) is not None, nfeat=nfeat,
        nclusters=nclusters,
        imsize=int(getattr(args, "imsize", 512)), pretrained=getattr(args, "pretrained", None))


def _load_strict(head: RetrievalHead, state: dict, path: Path) -> None:
    """Load `state` into `head`; CheckpointError listing missing, unexpected, mis-shaped keys."""
    expected = head.state_dict()
    given = {k: v for k, v in state.items() if not k.startswith("backbone.")}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    mis_shaped = [f"{k} (checkpoint {tuple(given[k].shape)}, head {tuple(expected[k].shape)})"
                  for k in expected if k in given and (not isinstance(given[k], Tensor)
                                                       or given[k].shape != expected[k].shape)]
    problems = [(label, items) for label, items in (("missing keys", missing),
                ("unexpected keys", unexpected), ("shape mismatches", mis_shaped)) if items]
    if problems:
        lines = "; ".join(f"{label} ({len(items)}): {', '.join(items[:10])}"
                          for label, items in problems)
        raise CheckpointError(f"{path}: the weights do not match the retrieval head "
                              f"{head.config}: {lines}")
    head.load_state_dict(given, strict=True)
