"""Options of `recon4d synth`: a synthetic scene's size, movers, camera path and seed."""

from __future__ import annotations

from dataclasses import dataclass

from recon4d.options.choices import TRAJECTORIES
from recon4d.options.fields import option


@dataclass(frozen=True)
class SynthOptions:
    """Scene: size, movers, camera path and seed of a synthetic scene.

    `recon4d.synthetic.generate_scene` validates the values (it takes them as arguments).
    """

    frames: int = option(48, "number of frames")
    width: int = option(512, "image width in pixels")
    height: int = option(384, "image height in pixels")
    movers: int = option(2, "number of independently moving boxes")
    seed: int = option(0, "random seed (the same options give identical scenes)")
    trajectory: str = option("orbit", "camera path (rotation = pure rotation, a degenerate "
                             "case)", choices=TRAJECTORIES)
    fps: float = option(10.0, "frame rate (timestamps, motion per frame)")
    stops: bool = option(True, "movers never pause (default: each pauses once)")
    freeze_movers: bool = option(False, "movers stay at their first pose (the static twin of "
                                 "the scene, for comparisons)")
