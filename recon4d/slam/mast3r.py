"""The MASt3R-SLAM stream (algorithms-spec §6, §8.4): frames in one at a time, a camera pose per
frame out at once, keyframes with fused pointmaps, a windowed back end with loop closure, and
relocalisation after tracking failure.

`Mast3rSlam(source, options).push(view) -> FramePose` tracks the frame against the current
keyframe (`track_frame`); when the matched fractions drop, the frame becomes a keyframe with an
edge to the previous keyframe and to up to `retrieval_k` retrieved ones (decoded both ways, kept
when both reach `edge_min_valid`), and the back end (`PoseGraph`) re-solves its window. A frame
that cannot be tracked switches the stream to relocalisation: each following frame is matched
to retrieved keyframes and, once one passes `reloc_min_valid`, becomes a keyframe at that
keyframe's pose. Every frame keeps its keyframe and its pose relative to it, so `frame_poses()`
follows the back end when it moves keyframes. When a keyframe is made, the frames tracked
against the previous one are re-solved against both (`SpanRefiner`, `refine_frames`), so
`frame_poses()` (the written trajectory) can differ from the poses `push` returned. Optional
per-frame mover masks (`MoverMasks`) are kept out of tracking, edges and the map. With
`movers` "geometry" or "flow" every solve against a keyframe also runs the consistency check
(`recon4d.dynamics.consistency`): matches that still disagree under the solved pose are taken
out and the pose solved again; keyframe pixels flagged twice become the keyframe's movers
(`Keyframe.flag`), and the frame's mover mask is joined by the frame pixels that the flagged
and the keyframe's mover pixels match and by unexplained pixels in front of keyframe points
(`frame_movers`), so a new keyframe starts with the movers its predecessor knew; the mask a
frame is written with adds the dense landing test (`landed_movers`), and a frame that becomes a
keyframe keeps that test's pixels in free space and inside known movers. Memory stays flat:
the dense data of keyframes, their codes and edges beyond the back end's recent reach is
spilled to a temporary directory (`recon4d.slam.mast3r_store`), which `close` (or leaving a
`with` block) removes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from recon4d.align.focal import FOCAL_RANGE, estimate_focal
from recon4d.dynamics.consistency import frame_movers
from recon4d.errors import InputError
from recon4d.geometry.sim3 import nearest_sim3, sim3_act, sim3_inverse, sim3_to_rigid
from recon4d.inference.model_images import img_to_uint8
from recon4d.models.retrieval import Retriever, load_retrieval
from recon4d.options.slam import Mast3rSlamOptions
from recon4d.slam.mast3r_asmk import AsmkKeyframeDatabase
from recon4d.slam.mast3r_graph import (
    Calibration,
    Edge,
    PoseGraph,
    edge_targets,
)
from recon4d.slam.mast3r_keyframe import Keyframe
from recon4d.slam.mast3r_landing import landed_movers
from recon4d.slam.mast3r_matching import match_keyframe
from recon4d.slam.mast3r_network import SlamPairSource
from recon4d.slam.mast3r_refine import SpanFrame, SpanRefiner
from recon4d.slam.mast3r_retrieval import KeyframeDatabase, KeyframeRetrieval
from recon4d.slam.mast3r_store import FrameLinks, Paged, SpillSpace, SpillStore
from recon4d.slam.mast3r_tracking import (
    C_MIN,
    TrackResult,
    consistency_outliers,
    constrain_to_rays,
    pose_pixels,
    static_pixels,
    track_frame,
    usable_matches,
)

# (view, pred_f, pred_k, keyframe) -> (H, W) bool movers of the frame, or None; pred_k and the
# keyframe are None for a frame decoded alone (the first one, relocalisation)
MoverMasks = Callable[[dict, dict, "dict | None", "Keyframe | None"], "Tensor | None"]
CHECKED_MOVERS = ("geometry", "flow")  # `movers` options that run the consistency check


@dataclass
class FramePose:
    """One frame's result as it leaves `push`: its camera-to-world pose (4, 4, rigid, world
    units) at that time, the keyframe it is relative to, whether it became a keyframe or was
    lost (pose = the previous frame's), the valid match fraction of tracking, its mover mask
    (H, W) bool (None without masks) and the seconds spent per stage (network, tracking,
    backend, refine: the previous span's frames re-solved when this frame became a
    keyframe)."""

    index: int
    pose_c2w: np.ndarray
    keyframe: int
    is_keyframe: bool
    lost: bool
    valid_fraction: float
    movers: np.ndarray | None = None
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class PairMatch:
    """Both directions of a keyframe pair's matches and their valid fractions."""

    edges: tuple[Edge, Edge]
    fractions: tuple[float, float]


class Mast3rSlam:
    """The stream (module doc). `intrinsics` (3, 3) in model pixels switches tracking and the
    back end to the calibrated residuals; `movers` gives per-frame mover masks. Retrieval uses
    `retriever` (or the one of `options.retrieval_weights`) with ASMK, else pooled tokens."""

    def __init__(self, source: SlamPairSource, options: Mast3rSlamOptions | None = None, *,
                 intrinsics: Tensor | None = None, movers: MoverMasks | None = None,
                 retriever: Retriever | None = None) -> None:
        self.source = source
        self.options = Mast3rSlamOptions() if options is None else options
        self.intrinsics = None if intrinsics is None else torch.as_tensor(intrinsics).double()
        self.movers = movers
        self.check_consistency = self.options.movers in CHECKED_MOVERS
        self.keyframes: list[Keyframe] = []
        self.codes: list[Any] = []
        self.focals: list[float] = []
        self.graph: PoseGraph | None = None
        if retriever is None and self.options.retrieval_weights is not None:
            retriever = load_retrieval(self.options.retrieval_weights,
                                       device=getattr(source, "device", "cpu"))
        min_score = self.options.retrieval_min_score
        self.database: KeyframeRetrieval = (
            KeyframeDatabase(min_score) if retriever is None
            else AsmkKeyframeDatabase(retriever, min_score))
        self.relative = FrameLinks()  # per frame: keyframe id, T keyframe<-frame
        self.spill = SpillSpace()  # keyframes' and edges' dense data beyond the stores' RAM
        self.keyframe_store = SpillStore(self.spill, "keyframe", _resident(self.options)[0])
        self.code_store = SpillStore(self.spill, "code", _resident(self.options)[0])
        self.lost_frames: list[int] = []
        self.refiner = SpanRefiner(source, self.options.refine_frames, self.intrinsics,
                                   self.options.min_valid, self.check_consistency)
        self.shape: tuple[int, int] | None = None
        self._pose: Tensor | None = None  # the last frame's Sim(3) world <- frame
        self._init_pixels: Tensor | None = None
        self._current = 0
        self._relocalising = False

    # --- the stream --------------------------------------------------------------------------

    def push(self, view: dict) -> FramePose:
        """Process the next frame (a view dict: `img` 1 x 3 x H x W in [-1, 1], as
        `load_images`, with `idx`; `label` names it in errors)."""
        index = len(self.relative)
        self._check_shape(view, index)
        clock = _Clock()
        with clock("network"):
            code = self.source.encode(view)
        if not self.keyframes:
            return self._start(index, view, code, clock)
        if self._relocalising:
            return self._relocalise(index, view, code, clock)
        keyframe = self.keyframes[self._current]
        with clock("network"):
            pred_f, pred_k = self.source.decode(code, self.codes[self._current])
        movers = self._mask(view, pred_f, pred_k, keyframe)
        with clock("tracking"):
            track = self._track(keyframe, pred_f, pred_k, self._pose, movers,
                                init_pixels=self._init_pixels)
        if track.lost:
            self._relocalising = True
            return self._lost(index, movers, track.valid_fraction, clock)
        with clock("tracking"):
            movers = self._flagged(movers, track, keyframe)
            written, kept = self._landed(movers, track, keyframe, pred_f)
        self._pose = track.pose_c2w
        if track.needs_keyframe:
            previous = self._current
            with clock("backend"):
                self._add_keyframe(self._keyframe(index, view, pred_f, self._pose, kept), code,
                                   self.database.describe(code, pred_f["desc"]))
            with clock("refine"):
                self._refine_span(previous)
            return self._emit(index, True, track.valid_fraction, written, clock)
        self._init_pixels = track.matches.pixels(pred_f["pts3d"].shape[1])
        self.relative.append((self._current, track.T_kf.cpu()))
        self.refiner.add(SpanFrame(index, code, movers, track.T_kf.cpu()))
        return self._emit(index, False, track.valid_fraction, written, clock)

    def _track(self, keyframe: Keyframe, pred_f: dict, pred_k: dict, pose: Tensor,
               movers: Tensor | None, **kwargs: Any) -> TrackResult:
        """`track_frame` with the stream's calibration and lost / keyframe limits."""
        return track_frame(keyframe, pred_f, pred_k, pose, intrinsics=self.intrinsics,
                           exclude_f=movers, min_valid=self.options.min_valid,
                           keyframe_overlap=self.options.keyframe_overlap,
                           check_consistency=self.check_consistency, **kwargs)

    def _flagged(self, movers: Tensor | None, track: TrackResult,
                 keyframe: Keyframe) -> Tensor | None:
        """With the consistency check: the flags counted on the keyframe, and the frame's mover
        mask joined by the frame pixels that the flagged keyframe pixels matched, those the
        keyframe's movers found, and unexplained ones in front of keyframe points
        (`frame_movers`); else `movers` as given."""
        if not self.check_consistency:
            return movers
        matches = track.matches
        index = matches.index.reshape(-1)
        keyframe.flag(track.inconsistent)
        flagged = frame_movers(index[track.inconsistent],
                               index[(matches.located & keyframe.movers).reshape(-1)],
                               index[matches.occluded.reshape(-1)],
                               index[matches.valid.reshape(-1)], tuple(keyframe.movers.shape))
        return flagged if movers is None else movers | flagged

    def _landed(self, movers: Tensor | None, track: TrackResult, keyframe: Keyframe,
                pred_f: dict) -> tuple[Tensor | None, Tensor | None]:
        """With the consistency check, `movers` joined by the dense landing test
        (`landed_movers`), which finds most of the mover pixels tracking's matches miss: the
        mask the frame is written with takes all it finds, the mask the frame keeps if it
        becomes a keyframe its pixels in free space and inside known movers
        (`Landing.keyframe_movers`); the span refinement keeps `movers`. Returns (written,
        kept)."""
        if not self.check_consistency or movers is None:
            return movers, movers
        landing = landed_movers(keyframe.points, keyframe.movers, pred_f["pts3d"], track.T_kf)
        return movers | landing.movers(), movers | landing.keyframe_movers()

    def _start(self, index: int, view: dict, code: Any, clock: _Clock) -> FramePose:
        """The first frame: a keyframe at the origin from its own prediction, fused with the
        second decoder side's prediction of the same image."""
        with clock("network"):
            pred, pred_again = self.source.decode(code, code)
        movers = self._mask(view, pred, None, None)
        self.graph = PoseGraph(self.options.window, self.options.backend_iters,
                               self.options.loop_gap, self._calibration(pred),
                               self.options.loop_keyframes, self.options.anchor_edges,
                               SpillStore(self.spill, "edge", _resident(self.options)[1]))
        keyframe = self._keyframe(index, view, pred, torch.eye(4, dtype=torch.float64), movers)
        self._pose = keyframe.pose_c2w
        keyframe.fuse(pred_again["pts3d"], pred_again["conf"])
        self._add_keyframe(keyframe, code, self.database.describe(code, pred["desc"]))
        return self._emit(index, True, 1.0, movers, clock)

    def _relocalise(self, index: int, view: dict, code: Any, clock: _Clock) -> FramePose:
        """§6 relocalisation: the frame, decoded alone, is matched both ways to its retrieved
        keyframes; with one passing `reloc_min_valid` it becomes a keyframe with edges to those
        that pass, its pose tracked against the best one from that one's pose (the reference
        takes that pose as it is; with the consistency check its mask gains the movers that
        track found, as a tracked frame's does, and its edges, matched before, drop them),
        else it stays lost."""
        with clock("network"):
            pred, _ = self.source.decode(code, code)
        movers = self._mask(view, pred, None, None)
        with clock("backend"):
            new_id = len(self.keyframes)
            candidate = self._keyframe(index, view, pred, self._pose, movers)
            desc = self.database.describe(code, pred["desc"])
            found = self.database.query(desc, self.options.retrieval_k)
            passing = []
            for old, _ in found:
                pair = self._match_pair(candidate, code, new_id, old)
                if min(pair.fractions) >= self.options.reloc_min_valid:
                    passing.append((old, pair))
        if not passing:
            return self._lost(index, movers, 0.0, clock)
        best = self.keyframes[passing[0][0]]
        with clock("tracking"):  # the pose against the best keyframe, starting at its pose
            pred_f, pred_k = self.source.decode(code, self.codes[passing[0][0]])
            track = self._track(best, pred_f, pred_k, best.pose_c2w, movers,
                                fuse_keyframe=False)
        if not track.lost:
            movers, kept = self._landed(self._flagged(movers, track, best), track, best, pred_f)
            if kept is not None:
                candidate.movers = candidate.movers | kept
        candidate.pose_c2w = best.pose_c2w.clone() if track.lost else track.pose_c2w
        self._relocalising = False
        found_movers = candidate.movers.reshape(-1)  # the edges were matched before the track
        pairs = [PairMatch(tuple(e.without_pixels(new_id, found_movers) for e in pair.edges),
                           pair.fractions) for _, pair in passing]
        with clock("backend"):
            self._add_keyframe(candidate, code, desc, pairs)
        return self._emit(index, True, min(passing[0][1].fractions), movers, clock)

    # --- keyframes and the back end -------------------------------------------------------

    def _keyframe(self, index: int, view: dict, pred: dict, pose: Tensor,
                  movers: Tensor | None) -> Keyframe:
        return Keyframe.from_prediction(index, img_to_uint8(view["img"][0]), pred,
                                        pose.double().to(pred["pts3d"].device), movers)

    def _add_keyframe(self, keyframe: Keyframe, code: Any, desc: Any,
                      pairs: list[PairMatch] | None = None) -> None:
        """Register the next keyframe at its pose; without given `pairs`, edges go to the
        previous keyframe (always kept) and to retrieved ones (kept when both directions reach
        `edge_min_valid`). Then the back end runs."""
        new_id = len(self.keyframes)
        if new_id and not pairs:
            pairs = [self._match_pair(keyframe, code, new_id, new_id - 1)]
            found = self.database.query(desc, self.options.retrieval_k, exclude={new_id - 1})
            for old, _ in found:
                pair = self._match_pair(keyframe, code, new_id, old)
                if min(pair.fractions) >= self.options.edge_min_valid:
                    pairs.append(pair)
        self.keyframes.append(keyframe)
        self.keyframe_store.add(keyframe)
        self.codes.append(code)
        if isinstance(code, Paged):  # the network's encoder tokens (oracle codes are ints)
            self.code_store.add(code)
        self.focals.append(_focal(keyframe.points))
        self.database.add(desc)
        self.graph.add_keyframe(keyframe.pose_c2w)
        for pair in pairs or []:
            for edge in pair.edges:
                self.graph.add_edge(edge)
        for k in self.graph.optimise(lambda k: self.keyframes[k].points.cpu()):
            self.graph.poses[k] = nearest_sim3(self.graph.poses[k])
            self.keyframes[k].pose_c2w = self.graph.poses[k].to(keyframe.points.device)
        self._current = new_id
        self._pose = self.keyframes[new_id].pose_c2w.clone()
        self._init_pixels = None
        self.relative.append((new_id, torch.eye(4, dtype=torch.float64)))

    def _refine_span(self, previous: int) -> None:
        """Re-solve the frames tracked against keyframe `previous` against it and the new
        current keyframe as well (`SpanRefiner`); their links stay relative to `previous`."""
        refined = self.refiner.refine(self.keyframes[previous], self.codes[previous],
                                      self.keyframes[self._current], self.codes[self._current])
        for index, T_af in refined:
            self.relative[index] = (previous, T_af.cpu())

    def finish(self) -> None:
        """End of the stream: refine the frames tracked since the last keyframe against it and
        the newest frame (`SpanRefiner.finish`). `frame_poses()` then holds the final poses."""
        if self.keyframes:
            for index, T_af in self.refiner.finish(self.keyframes[self._current],
                                                   self.codes[self._current]):
                self.relative[index] = (self._current, T_af.cpu())

    def _match_pair(self, keyframe: Keyframe, code: Any, new_id: int, old: int) -> PairMatch:
        """Matches of a new keyframe with keyframe `old`, one decoder run each way."""
        there = self._edge(keyframe, code, new_id, self.keyframes[old], self.codes[old], old)
        back = self._edge(self.keyframes[old], self.codes[old], old, keyframe, code, new_id)
        return PairMatch((there[0], back[0]), (there[1], back[1]))

    def _edge(self, src: Keyframe, src_code: Any, a: int, ref: Keyframe, ref_code: Any,
              b: int) -> tuple[Edge, float]:
        """Edge (a, b) from the decoder run with `src` (keyframe a) as view 1: every pixel of
        keyframe b (`ref`) matched in a, usable as in tracking (Q > Q_MIN, confident, not a
        mover; calibrated, precise), with the run's prediction of it in a's camera
        (`edge_targets`; calibrated, on the calibrated ray of its match in a); and its valid
        fraction. With the consistency check, the pixels that disagree under the edge's own
        solved Sim(3) are left out (and flagged on b)."""
        pred_s, pred_r = self.source.decode(src_code, ref_code)
        matches = match_keyframe(pred_s["pts3d"], pred_r["pts3d"], pred_s["desc"],
                                 pred_r["desc"], exclude_f=src.movers, exclude_k=ref.movers)
        weight, _, usable = usable_matches(matches, pred_s, pred_r, ref.average_conf())
        fraction = float(usable.sum()) / static_pixels(ref.movers)
        pix_b = pose_pixels(usable, matches, self.intrinsics)
        usable_a = (pred_s["conf"] > C_MIN) & (src.average_conf() > C_MIN) & ~src.movers
        target = edge_targets(src.points, pred_s["pts3d"], pred_r["pts3d"], usable_a,
                              pix_b).double()
        if self.intrinsics is not None:
            target = constrain_to_rays(target, matches.position.reshape(-1, 2)[pix_b],
                                       self.intrinsics.to(target.device))
        if self.check_consistency:
            start = sim3_inverse(nearest_sim3(ref.pose_c2w.double())) @ nearest_sim3(
                src.pose_c2w.double())
            bad = consistency_outliers(ref.points.reshape(-1, 3)[pix_b], target, weight[pix_b],
                                       start.to(target.device))
            ref.flag(pix_b[bad])
            pix_b, target = pix_b[~bad], target[~bad]
        return Edge(a, b, target.float().cpu(), pix_b.int().cpu(),
                    weight[pix_b].float().cpu()), fraction

    def _calibration(self, pred: dict) -> Calibration | None:
        if self.intrinsics is None:
            return None
        height, width = pred["pts3d"].shape[:2]
        return Calibration(self.intrinsics, height, width)

    # --- per-frame bookkeeping -------------------------------------------------------------

    def _check_shape(self, view: dict, index: int) -> None:
        shape = tuple(view["img"].shape[-2:])
        if self.shape is None:
            self.shape = shape
        elif shape != self.shape:
            label = view.get("label", f"frame {index}")
            raise InputError(f"{label}: frame {index} is {shape[1]}x{shape[0]} but the stream "
                             f"started at {self.shape[1]}x{self.shape[0]}; every frame must "
                             "have the same size")

    def _mask(self, view: dict, pred_f: dict, pred_k: dict | None,
              keyframe: Keyframe | None) -> Tensor | None:
        if self.movers is None:
            return None
        mask = self.movers(view, pred_f, pred_k, keyframe)
        return None if mask is None else torch.as_tensor(mask, device=pred_f["pts3d"].device)

    def _lost(self, index: int, movers: Tensor | None, valid: float,
              clock: _Clock) -> FramePose:
        keyframe_pose = self.keyframes[self._current].pose_c2w.double()
        self.relative.append((self._current, (sim3_inverse(keyframe_pose) @ self._pose).cpu()))
        self.lost_frames.append(index)
        self.refiner.clear()
        return self._emit(index, False, valid, movers, clock, lost=True)

    def _emit(self, index: int, is_keyframe: bool, valid: float, movers: Tensor | None,
              clock: _Clock, lost: bool = False) -> FramePose:
        pose = sim3_to_rigid(self._pose.double().cpu())[0].numpy()
        mask = None if movers is None else movers.cpu().numpy()
        return FramePose(index, pose, self.relative[-1][0], is_keyframe, lost, valid, mask,
                         clock.seconds)

    # --- results -------------------------------------------------------------------------

    def frame_poses(self) -> np.ndarray:
        """(N, 4, 4) rigid camera-to-world poses of every frame so far, from the current
        keyframe poses and each frame's pose relative to its keyframe."""
        poses = [self.keyframes[k].pose_c2w.double().cpu() @ rel for k, rel in self.relative]
        return sim3_to_rigid(torch.stack(poses))[0].numpy()

    def keyframe_poses(self) -> np.ndarray:
        """(K, 4, 4) rigid camera-to-world poses of the keyframes."""
        return sim3_to_rigid(torch.stack([k.pose_c2w.double().cpu()
                                          for k in self.keyframes]))[0].numpy()

    def frame_focals(self) -> np.ndarray:
        """(N,) focal (model pixels) of every frame: its keyframe's (or the calibration's)."""
        if self.intrinsics is not None:
            return np.full(len(self.relative), float(self.intrinsics[0, 0]))
        return np.array([self.focals[k] for k, _ in self.relative])

    def keyframe_points(self, keyframe: Keyframe, min_conf: float
                        ) -> tuple[Tensor, np.ndarray, np.ndarray]:
        """Points (M, 3) in the keyframe's camera (a tensor on its device), colours (M, 3) uint8
        and average confidences (M,) of its pixels with average confidence above `min_conf`,
        movers left out: its part of the map before its pose is applied."""
        conf = keyframe.average_conf()
        keep = keyframe.map_pixels(min_conf)
        colors = keyframe.image[keep.cpu().numpy()]
        return keyframe.points[keep], colors, conf[keep].float().cpu().numpy()

    def keyframe_cloud(self, keyframe: Keyframe, min_conf: float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`keyframe_points` in world coordinates (M, 3) float32, with their colours and
        confidences."""
        local, colors, conf = self.keyframe_points(keyframe, min_conf)
        points = sim3_act(keyframe.pose_c2w.double(), local.double())
        return points.float().cpu().numpy(), colors, conf

    def cloud(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fused map: every keyframe's `keyframe_cloud` at `cloud_conf`, concatenated."""
        parts = [self.keyframe_cloud(k, self.options.cloud_conf) for k in self.keyframes]
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))

    def tracked_any(self) -> bool:
        """Whether any frame after the first was tracked or relocalised."""
        return len(self.relative) - len(self.lost_frames) > 1

    def close(self) -> None:
        """Remove the spilled keyframes and edges (their results are gone with them)."""
        self.spill.close()

    def __enter__(self) -> Mast3rSlam:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def stream_poses(source: SlamPairSource, frames: Iterable[dict],
                 options: Mast3rSlamOptions | None = None, **kwargs: Any
                 ) -> Iterator[FramePose]:
    """A pose per frame as the frames arrive (`Mast3rSlam.push`); `kwargs` go to
    `Mast3rSlam` (intrinsics, movers)."""
    with Mast3rSlam(source, options, **kwargs) as slam:
        for view in frames:
            yield slam.push(view)


def _resident(options: Mast3rSlamOptions) -> tuple[int, int]:
    """Keyframes and edges whose dense data stay in RAM: at least what a back-end solve moves
    (its free keyframes, plus the current and new one) and every edge a solve can use (per free
    keyframe, the edges both ways to its previous and retrieved keyframes, and its anchors)."""
    free = options.window + options.loop_keyframes
    per_keyframe = 2 * (1 + options.retrieval_k) + options.anchor_edges
    return free + 2, free * per_keyframe


def _focal(points: Tensor) -> float:
    """Focal (pixels) of a pointmap (H, W, 3), in the alignment's range."""
    return float(estimate_focal(points[None].double().cpu(), min_focal=FOCAL_RANGE[0],
                                max_focal=FOCAL_RANGE[1])[0])


class _Clock:
    """Wall seconds per stage: `with clock("network"): ...` adds to `seconds["network"]`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stage = ""

    def __call__(self, stage: str) -> _Clock:
        self._stage = stage
        return self

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc_info: object) -> None:
        elapsed = time.perf_counter() - self._start
        self.seconds[self._stage] = self.seconds.get(self._stage, 0.0) + elapsed
