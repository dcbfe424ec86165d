"""Geometry at the bottom of recon4d: one implementation of each concept, numpy or torch.

Every function accepts numpy arrays or torch tensors and returns the kind it was given (numpy
results are float64; tensors keep their dtype and device). Only numpy and torch are imported.

Conventions (shared by every module of recon4d):

- poses are camera-to-world (4, 4) matrices: world = R @ camera + t; a "relative pose" from
  camera i to camera j is inv(pose_j) @ pose_i (camera-i coordinates -> camera-j coordinates);
- camera axes are OpenCV's: x right, y down, z forward; depth is the z coordinate (not the
  distance along the ray);
- pixel (u, v) = (column, row); the centre of pixel [row, col] is at integer coordinates
  (u, v) = (col, row), so the image spans [-0.5, W - 0.5] x [-0.5, H - 0.5];
- intrinsics are pinhole K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]] in pixels, in that frame;
- quaternions are (x, y, z, w), scalar last (TUM and scipy order), unit norm, w >= 0 out;
- shapes: points (..., 3), rotations (..., 3, 3), transforms (..., 4, 4), images (..., H, W)
  and per-pixel vectors (..., H, W, C); leading dimensions are batch dimensions.

Modules: `quaternions`, `rotations`, `transforms` (rigid/similarity), `umeyama`, `cameras`
(pixel grid, rays, back-projection, projection), `flow` (flow induced by camera motion).
"""
