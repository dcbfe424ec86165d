"""Every file and folder name recon4d writes or reads back, in one place.

Writers (`recon4d.io.writers`, `recon4d.synthetic.scene_io`, the commands), readers
(`recon4d.eval`) and tests take the names from here. Frame files are numbered by frame index
with six digits in input order (`frame_stem`); `NNNNNN` below stands for that number.

Two kinds of per-frame mask, never called just "masks" on disk:

- **kept mask** (`kept_mask/`): the pixels whose 3D point is kept in the cloud (confidence
  threshold and clean-up, `Scene.masks`); PLY, GLB and COLMAP hold exactly these points.
- **dynamic mask** (`dynamic_mask/`, the motion mask): the pixels of moving content
  (`Scene.dynamic_masks`, a synthetic scene's movers); `recon4d eval` scores them against a
  benchmark's dynamic masks. The name is MonST3R's (`dynamic_mask_%d.png`).

Depth is `depth` everywhere (folder, format name, synthetic scene); never `depths` on disk.

Output folder of `recon4d reconstruct` (`write_scene`; format name in brackets), `infer`,
`masks` (`dynamic_mask/` too, at the input frames' resolution), `match` and `eval`:

| Name | What | Format | Written by |
|---|---|---|---|
| `scene.json` | what was run and every file written | JSON | every command |
| `predictions.npz` | pair predictions of the network | npz, no pickles | `infer` |
| `trajectory_tum.txt` | camera-to-world poses | TUM `t tx ty tz qx qy qz qw` | [trajectory] |
| `intrinsics.json` | K per frame, model and original resolution | JSON | [intrinsics] |
| `depth/NNNNNN.npy` | z-depth, scene units | float32 H×W | [depth] |
| `depth/NNNNNN.png` | z-depth = value × `depth_png_scale` | 16-bit PNG | [depth_png] |
| `depth_color/NNNNNN.png` | inverse depth, colour-mapped | RGB PNG | [depth_color] |
| `conf/NNNNNN.npy` | confidence of each pixel | float32 H×W | [conf] |
| `kept_mask/NNNNNN.png` | kept points (see above) | 8-bit PNG, 255 kept | [kept_mask] |
| `dynamic_mask/NNNNNN.png` | moving pixels (see above) | 8-bit PNG, 255 moving | [dynamic_mask] |
| `dynamic_maps/NNNNNN.npy` | scores the motion masks threshold | float32 H×W, [0, 1] | `masks` |
| `motion_overlay.mp4` | frames, moving pixels tinted | H.264 MP4 (PyAV) | `masks` |
| `motion_overlay.gif` | frames, moving pixels tinted | animated GIF | `masks` |
| `pointcloud.ply` | kept points | binary PLY, xyz float32, rgb uchar | [ply] |
| `scene.glb` | kept points and camera frustums | glTF 2.0 binary | [glb] |
| `colmap/sparse/0/` | `{cameras,images,points3D}.{txt,bin}` | COLMAP sparse model | [colmap] |
| `transforms.json` | cameras of a nerfstudio dataset | nerfstudio JSON | [nerfstudio] |
| `images/NNNNNN.*` | the frames at original resolution | source file or PNG | [nerfstudio] |
| `matches_I_J.npz` | matches of images I < J | npz | `match` |
| `matches_I_J.png` | drawing of some matches | PNG | `match` |
| `metrics.json` | evaluation report (default path) | JSON | `eval` |
| `slam_frames.csv` | per frame: mean L2W / I2P confidence, focal, failed | CSV | `slam` |
| `keyframes_tum.txt` | keyframe camera-to-world poses | TUM | `slam --method mast3r` |
| `keyframes/NNNNNN.png` | keyframe images, by frame index | RGB PNG | `slam --method mast3r` |
| `map_video.mp4` | the map growing beside the input | H.264 MP4 (PyAV) | `slam` |

4D outputs of `reconstruct` on a video (the dynamic path), beside the files above:

| Name | What | Format | Written by |
|---|---|---|---|
| `static.ply` | static kept points of all frames, voxel-deduplicated | binary PLY | [static_ply] |
| `dynamic/NNNNNN.ply` | moving kept points of frame NNNNNN | binary PLY | [dynamic_ply] |
| `depth.mp4`, `depth.gif` | inverse depth, colour-mapped | video | [videos] |
| `conf.mp4`, `conf.gif` | confidence, colour-mapped | video | [videos] |
| `dynamic_mask.mp4`, `dynamic_mask.gif` | frames, moving pixels tinted | video | [videos] |
| `render_4d.mp4` | the 4D cloud along a smooth virtual camera path | H.264 MP4 | [render] |
| `monst3r/` | the originals' layout (`pred_traj.txt`, `frame_%04d.npy`, …) | MonST3R | [monst3r] |

Synthetic scene folder (`recon4d synth`, `recon4d.synthetic.write_scene`; per-file formats are
recorded in its `scene.json` under `layout`); flow files exist for frames 0..N-2:

| Name | What | Format | Written by |
|---|---|---|---|
| `scene.json` | generator options, seed, size, layout | JSON | `synth` |
| `rgb/NNNNNN.png` | colour frame | 8-bit RGB PNG | `synth` |
| `depth/NNNNNN.npy` | z-depth, 0 where no surface | float32 H×W | `synth` |
| `dynamic_mask/NNNNNN.png` | pixels of movers | 8-bit PNG, 255 moving | `synth` |
| `instance/NNNNNN.png` | object id, 0 static | 16-bit PNG | `synth` |
| `flow_fwd/NNNNNN.npy` | optical flow to frame i+1 | float32 H×W×2 | `synth` |
| `flow_valid/NNNNNN.png` | where the flow is valid | 8-bit PNG, 255 valid | `synth` |
| `scene_flow_fwd/NNNNNN.npy` | 3D motion to frame i+1 | float32 H×W×3 | `synth` |
| `poses_c2w.npy` | camera-to-world poses | float64 N×4×4 | `synth` |
| `intrinsics.npy` | K per frame | float64 N×3×3 | `synth` |
| `timestamps.npy` | frame times, seconds | float64 N | `synth` |
| `object_poses.npy` | body-to-world pose of each object | float64 N×(K+1)×4×4 | `synth` |
| `trajectory_tum.txt` | camera-to-world poses | TUM | `synth` |
"""

from __future__ import annotations

# --- shared by command outputs and synthetic scenes -------------------------------------------
SCENE_JSON = "scene.json"
TRAJECTORY_FILE = "trajectory_tum.txt"
DEPTH_DIR = "depth"
DYNAMIC_MASK_DIR = "dynamic_mask"

# --- outputs of `recon4d infer`, `reconstruct`, `match` and `eval` --------------------------
PREDICTIONS_FILE = "predictions.npz"
INTRINSICS_FILE = "intrinsics.json"
DEPTH_COLOR_DIR = "depth_color"
CONF_DIR = "conf"
KEPT_MASK_DIR = "kept_mask"
CLOUD_FILE = "pointcloud.ply"
GLB_FILE = "scene.glb"
COLMAP_SPARSE_DIR = "colmap/sparse/0"
NERFSTUDIO_FILE = "transforms.json"
NERFSTUDIO_IMAGES_DIR = "images"
METRICS_FILE = "metrics.json"
DYNAMIC_MAPS_DIR = "dynamic_maps"
MOTION_OVERLAY_VIDEO = "motion_overlay.mp4"
MOTION_OVERLAY_GIF = "motion_overlay.gif"
SLAM_FRAMES_FILE = "slam_frames.csv"  # per frame: name, mean L2W / I2P confidence, focal, failed
KEYFRAME_TRAJECTORY_FILE = "keyframes_tum.txt"  # `slam --method mast3r`: keyframe poses
KEYFRAME_IMAGES_DIR = "keyframes"  # `slam --method mast3r`: keyframe images by frame index
MAP_VIDEO_FILE = "map_video.mp4"  # `slam`: the map growing beside the input

# --- 4D outputs of the dynamic path ---------------------------------------------------------
STATIC_CLOUD_FILE = "static.ply"
DYNAMIC_CLOUD_DIR = "dynamic"
DEPTH_VIDEO_STEM = "depth"  # + .mp4 / .gif
CONF_VIDEO_STEM = "conf"
DYNAMIC_MASK_VIDEO_STEM = "dynamic_mask"
RENDER_VIDEO = "render_4d.mp4"
MONST3R_DIR = "monst3r"  # the originals' file layout (MonST3R / Easi3R viewers and scripts)

# --- inside MONST3R_DIR (or an original MonST3R output folder); fill in the frame index ------
MONST3R_TRAJECTORY_FILE = "pred_traj.txt"  # `i tx ty tz qw qx qy qz`, camera-to-world
MONST3R_INTRINSICS_FILE = "pred_intrinsics.txt"  # N rows of 9 (K row-major)
MONST3R_DEPTH = "frame_{:04d}.npy"
MONST3R_IMAGE = "frame_{:04d}.png"
MONST3R_CONF = "conf_{}.npy"  # log confidence
MONST3R_INIT_CONF = "init_conf_{}.npy"
MONST3R_DYNAMIC_MASK = "dynamic_mask_{}.png"
MONST3R_ENLARGED_MASK = "enlarged_dynamic_mask_{}.png"

# --- synthetic scene folder ---------------------------------------------------------------------
RGB_DIR = "rgb"
INSTANCE_DIR = "instance"
FLOW_DIR = "flow_fwd"
FLOW_VALID_DIR = "flow_valid"
SCENE_FLOW_DIR = "scene_flow_fwd"
POSES_FILE = "poses_c2w.npy"
INTRINSICS_ARRAY_FILE = "intrinsics.npy"
TIMESTAMPS_FILE = "timestamps.npy"
OBJECT_POSES_FILE = "object_poses.npy"


def frame_stem(index: int) -> str:
    """The zero-padded file stem of frame `index` (`000042`), shared by every per-frame folder."""
    return f"{index:06d}"


def frame_name(index: int) -> str:
    """Name of frame `index` when it has no file name (a video frame, an image given in memory):
    `frame_000042`."""
    return f"frame_{frame_stem(index)}"


def frame_file(folder: str, index: int, suffix: str) -> str:
    """Relative POSIX path of frame `index` in `folder`: `frame_file("depth", 3, ".npy")` is
    `depth/000003.npy`."""
    return f"{folder}/{frame_stem(index)}{suffix}"


def matches_stem(i: int, j: int) -> str:
    """File stem of the matches of images `i` and `j` (`matches_0_2`; .npz data, .png drawing)."""
    return f"matches_{i}_{j}"
