"""Camera paths inside the synthetic room: orbit, forward walk, hand-held shake, pure rotation.

All paths keep the camera at least ~0.6 units from the movers' region (radius < 2.3 about the
room axis) and from the static boxes along the walls. World axes: z up, floor at z = 0.
"""

from __future__ import annotations

import numpy as np

from recon4d.geometry.cameras import look_at
from recon4d.options import TRAJECTORIES

EYE_HEIGHT = 1.5
TARGET = np.array([0.0, 0.0, 0.8])  # where orbiting and hand-held cameras look
ORBIT_RADIUS, ORBIT_SPEED = 3.5, np.radians(20.0)  # units, radians per second
WALK_FROM, WALK_TO, WALK_SPEED = 4.6, 2.9, 0.35  # distances from the axis, units per second
STAND_DISTANCE = 3.5  # hand-held and rotating cameras stand this far from the room axis


def smooth_jitter(rng: np.random.Generator, times: np.ndarray, amplitude: float,
                  dims: int = 3) -> np.ndarray:
    """Hand-like wobble (T, dims): three random sinusoids of 0.3-3 Hz per dimension."""
    freq = rng.uniform(0.3, 3.0, size=(3, dims))
    phase = rng.uniform(0, 2 * np.pi, size=(3, dims))
    weight = rng.uniform(0.5, 1.0, size=(3, dims))
    waves = np.sin(2 * np.pi * freq[None] * times[:, None, None] + phase[None]) * weight[None]
    return amplitude * waves.sum(axis=1) / weight.sum(axis=0)


def _direction(yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """Unit viewing directions from yaw (about z, from +x) and pitch (up positive), (T, 3)."""
    return np.stack([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)],
                    axis=-1)


def camera_trajectory(kind: str, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera-to-world poses (T, 4, 4), OpenCV axes, for a path `kind` in TRAJECTORIES."""
    times = np.asarray(times, dtype=np.float64)
    start = rng.uniform(0, 2 * np.pi)
    sign = rng.choice([-1.0, 1.0])
    if kind == "orbit":
        angle = start + sign * ORBIT_SPEED * times
        height = EYE_HEIGHT + 0.2 * np.sin(2 * np.pi * times / 7.0)
        eye = np.stack([ORBIT_RADIUS * np.cos(angle), ORBIT_RADIUS * np.sin(angle), height], -1)
        return look_at(eye, TARGET)
    if kind == "walk":  # towards the centre along the optical axis, then back, and so on
        leg = WALK_FROM - WALK_TO
        phase = (WALK_SPEED * times / leg) % 2.0
        dist = WALK_FROM - leg * np.minimum(phase, 2.0 - phase)
        eye = np.stack([dist * np.cos(start), dist * np.sin(start),
                        np.full_like(times, EYE_HEIGHT)], -1) + smooth_jitter(rng, times, 0.02)
        heading = start + np.pi + sign * smooth_jitter(rng, times, np.radians(8.0), dims=1)[:, 0]
        return look_at(eye, eye + _direction(heading, np.full_like(times, np.radians(-10.0))))
    if kind == "shake":
        base = np.array([STAND_DISTANCE * np.cos(start), STAND_DISTANCE * np.sin(start),
                         EYE_HEIGHT])
        eye = base + smooth_jitter(rng, times, 0.04)
        return look_at(eye, TARGET + smooth_jitter(rng, times, 0.08))
    if kind == "rotation":
        eye = np.array([STAND_DISTANCE * np.cos(start), STAND_DISTANCE * np.sin(start),
                        EYE_HEIGHT])
        yaw = start + np.pi + np.radians(25.0) * np.sin(2 * np.pi * times / 8.0
                                                        + rng.uniform(0, 2 * np.pi))
        pitch = np.radians(-12.0 + 6.0 * np.sin(2 * np.pi * times / 4.0))
        return look_at(np.broadcast_to(eye, (len(times), 3)), eye + _direction(yaw, pitch))
    raise ValueError(f"unknown trajectory {kind!r}; choose one of {', '.join(TRAJECTORIES)}")
