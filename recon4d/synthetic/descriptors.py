"""Dense descriptors from surface identity: random Fourier features of body-frame coordinates.

desc(k, p) = [cos(W_k p + b_k), sin(W_k p + b_k)] / sqrt(D/2) is a unit vector, and
desc(k, p) . desc(k, q) = mean_i cos(w_i . (p - q)): 1 for the same surface point in any frame,
near 0 for distant points or other objects (each object k has its own W_k, b_k).
"""

from __future__ import annotations

import numpy as np

WAVELENGTHS = (0.08, 1.5)  # scene units: finest and coarsest spatial period of the features


class IdentityDescriptors:
    """Descriptor map of (object id, body-frame point); same seed -> same features."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        if dim <= 0 or dim % 2:
            raise ValueError(f"descriptor dimension must be a positive even number, got {dim}")
        self.dim, self.seed = dim, seed
        self._features: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _object_features(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Frequencies (D/2, 3) with log-uniform periods in WAVELENGTHS, phases (D/2,)."""
        if k not in self._features:
            rng = np.random.default_rng([self.seed, 7, k + 1])  # k >= -1 (sky)
            direction = rng.normal(size=(self.dim // 2, 3))
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            period = np.exp(rng.uniform(*np.log(WAVELENGTHS), size=(self.dim // 2, 1)))
            self._features[k] = 2 * np.pi * direction / period, rng.uniform(0, 2 * np.pi,
                                                                             self.dim // 2)
        return self._features[k]

    def __call__(self, objects: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Unit descriptors (..., D) float32 of body-frame `points` (..., 3) on `objects` (...)."""
        desc = np.zeros(objects.shape + (self.dim,), dtype=np.float32)
        for k in np.unique(objects):
            sel = objects == k
            freq, phase = self._object_features(int(k))
            angle = points[sel] @ freq.T + phase
            desc[sel] = np.concatenate([np.cos(angle), np.sin(angle)], -1) / np.sqrt(self.dim / 2)
        return desc
