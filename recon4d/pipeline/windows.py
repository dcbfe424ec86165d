"""Window-wise global alignment of long videos: bounded memory, one gauge, any length.

The frames are cut into windows of `window` frames overlapping by `overlap` (default half); each
window is aligned by `recon4d.align.global_align` on the pairs fully inside it, read from a
`PairStore` on disk, so memory depends on the window, not on the video's length. Every window
after the first has its focals fixed (frames solved before keep theirs, new frames take the
first window's median) and is then moved into the gauge (world frame and scale) of the first
by the similarity that best maps its overlap frames' points onto their earlier positions.
Points pin the scale far better than the overlap cameras' short baseline (fixing those poses in
the solver, as MonST3R does, left 3-6x the one-piece trajectory error on synthetic walks). Each
frame's depth, pose, confidence and mask come from the window holding it farthest from its ends.
Chained windows drift like odometry, so a global refinement over all pairs of the store follows
(`recon4d.align.pose_refine`: poses and depth maps, streamed block by block). Unlike MonST3R's
window-wise mode (fixed 100-frame windows that crash below 100 frames), a video no longer than
one window is aligned in one piece.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from recon4d.align import KnownCameras, global_align
from recon4d.align.inputs import as_pair_data
from recon4d.align.pose_refine import PairChunk, refine_alignment
from recon4d.align.state import AlignState
from recon4d.errors import InputError, OptionError
from recon4d.geometry.cameras import depth_to_world
from recon4d.geometry.umeyama import umeyama
from recon4d.inference.pair_store import PairStore
from recon4d.scene import Scene

# 50 frames x ~10 pairs per frame (swinstride-5) at 512x288 keep the fast solver near 4 GB
DEFAULT_WINDOW = 50
MIN_OVERLAP = 2  # fixed frames that pin the scale of a window (one fixed pose leaves it free)

AlignKwargs = Mapping[str, Any] | Callable[[np.ndarray], Mapping[str, Any]]


def plan_windows(n_frames: int, reach: int, window: int | None = None,
                 overlap: int | None = None) -> list[range]:
    """The frame ranges to align, in order: one piece when `n_frames <= window`.

    `reach` is the largest frame distance of a pair. The default window is `DEFAULT_WINDOW`,
    widened to 2 x reach so that every pair lies inside some window; explicit values are
    checked, and refused (OptionError) when windows would drop pairs or leave the scale free.
    """
    if window is not None and (not isinstance(window, int) or window < 2):
        raise OptionError(f"window must be a whole number of at least 2 frames, got {window!r}")
    if window is None:
        window = max(DEFAULT_WINDOW, 2 * max(reach, MIN_OVERLAP))
    if overlap is not None and (not isinstance(overlap, int) or not 0 <= overlap < window):
        raise OptionError(f"window overlap must be a whole number of frames in 0..{window - 1} "
                          f"(less than the window), got {overlap!r}")
    if n_frames <= window:
        return [range(n_frames)]
    overlap = window // 2 if overlap is None else overlap
    need = max(reach, MIN_OVERLAP)
    if overlap < need:
        raise OptionError(f"windows of {window} frames overlapping by {overlap}: the pair graph "
                          f"links frames up to {reach} apart, so windows must overlap by at "
                          f"least {need} frames (with the default half overlap: a window of at "
                          f"least {2 * need} frames)")
    starts = list(range(0, n_frames - window, window - overlap)) + [n_frames - window]
    return [range(s, s + window) for s in starts]


def aligned_in_windows(store: PairStore, *, window: int | None = None,
                       overlap: int | None = None, known: KnownCameras | None = None,
                       align_kwargs: AlignKwargs | None = None, refine: bool = True,
                       progress: bool = False) -> Scene:
    """Align the `store.n_images` frames of `store` window by window into one `Scene`.

    `known`: fixed intrinsics of all frames (focals, principal points; no poses).
    `align_kwargs`: further `global_align` arguments, or a function of a window's frame
    indices (K,) returning them (e.g. video terms cut to those frames). See `plan_windows`.
    `refine`: after the windows, refine every pose and depth map over all pairs of the store
    (`recon4d.align.pose_refine`; intrinsics fixed, frame 0 kept).
    """
    _check_known(known)
    n = store.n_images
    reach = int(np.abs(store.edges[:, 0] - store.edges[:, 1]).max())
    windows = plan_windows(n, reach, window, overlap)
    for frames in windows:  # every cheap check before any slow work
        _check_covered(store, np.arange(frames.start, frames.stop))
    owner = _owners(n, windows)
    out = _SceneBuffer(n, store.height, store.width)
    solved = np.zeros(n, bool)
    first_focal = None
    for k, frames in enumerate(tqdm(windows, desc="windows", unit="window",
                                    disable=not progress or len(windows) == 1)):
        frames = np.arange(frames.start, frames.stop)
        focal = _add_window(store, frames, owner[frames] == k, out, solved, known, first_focal,
                            align_kwargs)
        first_focal = focal if first_focal is None else first_focal
    if refine and len(windows) > 1:
        _refine(out, store, windows[1].start - windows[0].start)
    return out.scene()


def _add_window(store: PairStore, frames: np.ndarray, owned: np.ndarray, out: _SceneBuffer,
                solved: np.ndarray, known: KnownCameras | None, first_focal: float | None,
                align_kwargs: AlignKwargs | None) -> float:
    """Align the window `frames` and copy into `out` its new frames and those it owns
    (`owned`, bool per frame); marks them `solved`, returns the window's median focal. Its
    scene lives only here, so no window's full-resolution result outlives its turn."""
    known_here = _window_intrinsics(frames, solved, out, known, first_focal)
    kwargs = _kwargs(align_kwargs, frames)
    piece = global_align(store.read(frames), known=known_here, **kwargs)
    done = solved[frames]
    if done.any():
        _move_onto(piece, np.flatnonzero(done), out, frames[done])
    take = owned | ~done
    out.take(piece, frames[take], np.flatnonzero(take), _moving(kwargs, take))
    solved[frames] = True
    return float(np.median(piece.intrinsics[:, 0, 0]))


def _refine(out: _SceneBuffer, store: PairStore, block: int) -> None:
    """Refine the poses and depth maps of `out` in place over every pair of `store`."""
    state = AlignState(torch.from_numpy(out.poses_c2w[:, :3, :3].copy()),
                       torch.from_numpy(out.poses_c2w[:, :3, 3].copy()),
                       torch.from_numpy(out.intrinsics[:, 0, 0].copy()),
                       torch.from_numpy(out.intrinsics[:, :2, 2].copy()),
                       torch.from_numpy(out.depths), *(torch.empty(0),) * 3)
    moving = out.moving

    def read(frames: np.ndarray) -> PairChunk:
        static = None if moving is None else torch.from_numpy(~moving[frames]).float()
        return PairChunk(store.edges_within(frames), frames, as_pair_data(store.read(frames)),
                         static)

    refine_alignment(state, store.edges, read, block)
    out.poses_c2w[:, :3, :3], out.poses_c2w[:, :3, 3] = state.rot.numpy(), state.trans.numpy()


def _owners(n_frames: int, windows: list[range]) -> np.ndarray:
    """The window each frame's depth and pose come from: the one holding it farthest from its
    ends (most pairs on both sides; the earlier on a tie)."""
    margin = np.full((len(windows), n_frames), -1)
    for k, frames in enumerate(windows):
        f = np.arange(frames.start, frames.stop)
        margin[k, f] = np.minimum(f - frames.start, frames.stop - 1 - f)
    return margin.argmax(axis=0)


def _moving(kwargs: Mapping[str, Any], rows: np.ndarray) -> np.ndarray | None:
    """The pixels of a window's rows `rows` (bool) left out of its multi-view term (moving),
    or None when the window's alignment used them all."""
    video = kwargs.get("video")
    if video is None or video.dynamic_masks is None or not video.mask_align:
        return None
    return np.asarray(video.dynamic_masks)[rows] != 0


def _check_known(known: KnownCameras | None) -> None:
    """Window mode takes fixed known intrinsics only (its own fixed poses join the gauge)."""
    if known is None:
        return
    if known.poses_c2w is not None or not known.fix:
        raise InputError("aligning in windows accepts known intrinsics (fixed) but not known "
                         "poses or initial values; align in one piece for those")


def _check_covered(store: PairStore, frames: np.ndarray) -> None:
    """InputError when a frame of the window has no pair inside the window."""
    inside = store.edges[store.edges_within(frames)]
    lonely = np.setdiff1d(frames, inside)
    if len(lonely):
        raise InputError(f"frame {int(lonely[0])} has no pair with another frame of its window "
                         f"{int(frames[0])}..{int(frames[-1])}; use a denser pair graph or a "
                         "larger window")


def _window_intrinsics(frames: np.ndarray, solved: np.ndarray, out: _SceneBuffer,
                       known: KnownCameras | None, first_focal: float | None
                       ) -> KnownCameras | None:
    """Fixed intrinsics of one window: the user's, else (after the first window) the focals of
    frames solved before and the first window's median focal for new frames."""
    if known is not None:
        focals, pps = np.asarray(known.focals), known.pps
        pps = None if pps is None else np.asarray(pps)
        return KnownCameras(focals=focals[frames] if focals.ndim == 1 else focals,
                            pps=pps[frames] if pps is not None and pps.ndim == 2 else pps)
    if first_focal is None:
        return None
    return KnownCameras(focals=np.where(solved[frames], out.intrinsics[frames, 0, 0], first_focal))


def _move_onto(piece: Scene, rows: np.ndarray, out: _SceneBuffer, frames: np.ndarray) -> None:
    """Move `piece` (in place) by the similarity taking its rows `rows` onto the same frames
    `frames` already in `out`: weighted Umeyama on the pixels kept in both, weights 1 / depth^2
    (predicted depth errors grow with depth)."""
    mine = depth_to_world(piece.depths[rows], piece.intrinsics[rows], piece.poses_c2w[rows])
    theirs = depth_to_world(out.depths[frames], out.intrinsics[frames], out.poses_c2w[frames])
    weights = (piece.masks[rows] & out.masks[frames]) / np.maximum(out.depths[frames], 1e-12) ** 2
    if not weights.any():
        raise InputError(f"frames {int(frames[0])}..{int(frames[-1])}: no confident point "
                         "shared by two windows to join them; use a larger window overlap")
    scale, rot, trans = umeyama(mine.reshape(-1, 3), theirs.reshape(-1, 3), weights.reshape(-1))
    poses = piece.poses_c2w.copy()
    poses[:, :3, :3] = rot @ poses[:, :3, :3]
    poses[:, :3, 3] = scale * poses[:, :3, 3] @ rot.T + trans
    piece.poses_c2w, piece.depths = poses, piece.depths * np.float32(scale)


def _kwargs(align_kwargs: AlignKwargs | None, frames: np.ndarray) -> dict[str, Any]:
    """The extra `global_align` arguments of one window, checked."""
    kwargs = dict(align_kwargs(frames) if callable(align_kwargs) else align_kwargs or {})
    taken = sorted({"known", "images"} & kwargs.keys())
    if taken:
        raise InputError(f"align_kwargs may not set {', '.join(taken)}: window alignment sets "
                         "them itself (pass known intrinsics as `known`)")
    return kwargs


class _SceneBuffer:
    """The N-frame scene filled window by window: the output itself, and with the store's O(E)
    index the only data of the windowed alignment that grows with the video (colour, depth,
    confidence and mask: 1.8 MB a frame at 512x288)."""

    def __init__(self, n: int, height: int, width: int) -> None:
        self.images = np.zeros((n, height, width, 3), np.uint8)
        self.depths = np.zeros((n, height, width), np.float32)
        self.confs = np.zeros((n, height, width), np.float32)
        self.masks = np.zeros((n, height, width), bool)
        self.intrinsics = np.zeros((n, 3, 3))
        self.poses_c2w = np.tile(np.eye(4), (n, 1, 1))
        self.moving: np.ndarray | None = None  # pixels left out of the multi-view term

    def take(self, piece: Scene, frames: np.ndarray, rows: np.ndarray,
             moving: np.ndarray | None) -> None:
        """Copy rows `rows` of a window's scene into frames `frames`, with the rows' moving
        pixels `moving` (None: none)."""
        for name in ("images", "depths", "confs", "masks", "intrinsics", "poses_c2w"):
            getattr(self, name)[frames] = getattr(piece, name)[rows]
        if moving is not None and self.moving is None:
            self.moving = np.zeros(self.masks.shape, bool)
        if self.moving is not None:
            self.moving[frames] = False if moving is None else moving

    def scene(self) -> Scene:
        return Scene(images=self.images, depths=self.depths, confs=self.confs,
                     intrinsics=self.intrinsics, poses_c2w=self.poses_c2w, masks=self.masks)
