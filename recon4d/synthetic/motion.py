"""Rigid movers: smooth random paths with rotation, and stop intervals where they stand still.

Each mover follows a Lissajous path around the room centre. Ground movers slide on the floor and
turn about the vertical; floating movers tumble about a random axis. A stop interval [start, end)
freezes the mover's "progress" clock, so its pose is exactly constant there and it starts again
where it stopped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from recon4d.geometry.rotations import axis_angle
from recon4d.geometry.transforms import make_rigid

PATH_RADIUS = 0.5  # path centres lie within this distance of the room axis
PATH_AMPLITUDE = (0.4, 0.8)  # per-axis amplitude range of the path around its centre


@dataclass(frozen=True)
class Mover:
    """Shape and motion of one mover; times are in seconds."""

    size: tuple[float, float, float]
    floating: bool
    centre: tuple[float, float, float]
    amplitude: tuple[float, float]
    period: tuple[float, float]
    phase: tuple[float, float]
    spin_axis: tuple[float, float, float]
    spin_rate: float  # radians per second of progress
    spin_phase: float
    stop: tuple[float, float] | None  # [start, end) seconds without motion

    def progress(self, times: np.ndarray) -> np.ndarray:
        """Motion clock: time minus the part of the stop interval already elapsed."""
        times = np.asarray(times, dtype=np.float64)
        if self.stop is None:
            return times
        start, end = self.stop
        return np.where(times < start, times,
                        np.where(times < end, start, times - (end - start)))

    def poses(self, times: np.ndarray) -> np.ndarray:
        """Body-to-world poses (T, 4, 4) at `times`."""
        tau = self.progress(times)
        angle = 2 * np.pi * tau[:, None] / np.asarray(self.period) + np.asarray(self.phase)
        xy = np.asarray(self.centre[:2]) + np.asarray(self.amplitude) * np.sin(angle)
        position = np.concatenate([xy, np.full((len(tau), 1), self.centre[2])], axis=1)
        rotation = axis_angle(np.asarray(self.spin_axis), self.spin_rate * tau + self.spin_phase)
        return make_rigid(rotation, position)

    def as_dict(self) -> dict:
        """JSON-ready description."""
        return asdict(self)


def random_mover(rng: np.random.Generator, floating: bool, duration: float,
                 stops: bool) -> Mover:
    """A mover with random size, path and spin; with `stops`, one pause of 20-40% of `duration`."""
    if floating:
        size = (float(rng.uniform(0.35, 0.6)),) * 3
        height = float(rng.uniform(1.0, 1.6))
        axis = rng.normal(size=3)
        axis = tuple(float(a) for a in axis / np.linalg.norm(axis))
    else:
        size = tuple(float(s) for s in rng.uniform(0.4, 0.9, size=3))
        height = size[2] / 2  # the body origin is the box centre: resting on the floor
        axis = (0.0, 0.0, 1.0)
    r, a = PATH_RADIUS * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
    stop = None
    if stops:
        length = rng.uniform(0.2, 0.4) * duration
        start = rng.uniform(0.0, duration - length)
        stop = (float(start), float(start + length))
    return Mover(size=size, floating=floating,
                 centre=(float(r * np.cos(a)), float(r * np.sin(a)), height),
                 amplitude=tuple(float(x) for x in rng.uniform(*PATH_AMPLITUDE, size=2)),
                 period=tuple(float(x) for x in rng.uniform(4.0, 8.0, size=2)),
                 phase=tuple(float(x) for x in rng.uniform(0, 2 * np.pi, size=2)),
                 spin_axis=axis, spin_rate=float(rng.choice([-1, 1]) * rng.uniform(0.5, 1.2)),
                 spin_phase=float(rng.uniform(0, 2 * np.pi)), stop=stop)
