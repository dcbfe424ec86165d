"""Depth, confidence and motion-mask videos: one colour scale per video, decodable MP4 and GIF
files with the right frame count, size and rate."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image, ImageSequence

from recon4d.errors import OptionError
from recon4d.io.writers.videos import write_videos
from recon4d.scene import Scene
from recon4d.viz.colormap import VIRIDIS, inverse_depth_colours, log_colours
from recon4d.viz.overlay import TINT, frame_rate

BANDS = 8  # depth bands of 8 columns each
BAND_DEPTHS = np.linspace(1.0, 8.0, BANDS)


def lut_index(colours: np.ndarray) -> np.ndarray:
    """Index of the nearest VIRIDIS entry of each (..., 3) colour."""
    distance = np.linalg.norm(colours[..., None, :].astype(float) - VIRIDIS.astype(float), axis=-1)
    return distance.argmin(axis=-1)


def ramp_scene(frames: int = 5, height: int = 21, width: int = 8 * BANDS + 1,
               timestamps: np.ndarray | None = None, dynamic: bool = True) -> Scene:
    """Depth rising in BANDS bands left to right (the last column: no depth), confidence 1 to
    1000 down the rows, a square moving right in the top-left corner. Pixel (0, t) of frame t
    has no depth and no confidence, so no two frames are alike (a GIF merges equal ones)."""
    depths = np.zeros((frames, height, width), np.float32)
    depths[:, :, :8 * BANDS] = np.repeat(BAND_DEPTHS, 8)
    confs = np.repeat(np.logspace(0, 3, height, dtype=np.float32)[:, None], width, axis=1)
    confs = np.repeat(confs[None], frames, axis=0)
    moving = np.zeros((frames, height, width), bool)
    for t in range(frames):
        depths[t, 0, t] = confs[t, 0, t] = 0
        moving[t, 1:5, t:t + 4] = True
    return Scene(images=np.full((frames, height, width, 3), 100, np.uint8), depths=depths,
                 confs=confs,
                 intrinsics=np.repeat(np.eye(3)[None], frames, axis=0),
                 poses_c2w=np.repeat(np.eye(4)[None], frames, axis=0),
                 masks=np.ones((frames, height, width), bool), timestamps=timestamps,
                 dynamic_masks=moving if dynamic else None)


def test_depth_ramp_is_a_monotone_colour_ramp_on_one_scale():
    depths = np.repeat(np.repeat(BAND_DEPTHS, 8)[None, None], 2, axis=0)
    depths[1, 0, 40:] = BAND_DEPTHS[4]  # frame 1: a nearer far half
    colours = inverse_depth_colours(depths)
    index = lut_index(colours[0, 0, ::8])
    assert np.all(np.diff(index) < 0)  # farther is darker
    assert index[0] >= 250 and index[-1] <= 5  # the 2nd..98th percentiles span the colours
    # one normalisation for the video: the same depth has the same colour in every frame
    np.testing.assert_array_equal(colours[1, 0, 32:48], colours[0, 0, 32:40].repeat(2, axis=0))
    assert (inverse_depth_colours(np.zeros((1, 2, 2))) == 0).all()  # no depth: black


def test_confidence_is_mapped_on_a_log_scale():
    conf = np.repeat(np.array([1.0, 10.0, 100.0, 1000.0]), 10)[None, None]
    index = lut_index(log_colours(conf)[0, 0, ::10])
    # equal steps in log; a linear scale would put 1, 10 and 100 all below index 26
    np.testing.assert_array_equal(index, [0, 85, 170, 255])
    assert (log_colours(np.array([[0.0, -1.0]])) == 0).all()


def decode_mp4(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return frames, float(stream.average_rate)


def decode_gif(path):
    with Image.open(path) as gif:
        frames = [np.array(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)]
        return frames, gif.info["duration"]


def test_videos_decode_with_count_size_rate_and_ramp(tmp_path):
    scene = ramp_scene(timestamps=np.arange(5) * 0.04)  # 25 fps
    written = write_videos(scene, tmp_path)
    assert written == ["depth.gif", "depth.mp4", "conf.gif", "conf.mp4", "dynamic_mask.gif",
                       "dynamic_mask.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(written)  # no temporaries left
    for stem in ("depth", "conf", "dynamic_mask"):
        frames, rate = decode_mp4(tmp_path / f"{stem}.mp4")
        assert (len(frames), frames[0].shape, rate) == (5, (22, 66, 3), pytest.approx(25.0))
        gif_frames, duration = decode_gif(tmp_path / f"{stem}.gif")
        assert (len(gif_frames), gif_frames[0].shape, duration) == (5, (21, 65, 3), 40)
    frames, _ = decode_mp4(tmp_path / "depth.mp4")
    band_index = lut_index(frames[2][10, 4:8 * BANDS:8])  # band centres, after H.264
    assert np.all(np.diff(band_index) < 0)
    overlay, _ = decode_gif(tmp_path / "dynamic_mask.gif")
    moving, still = overlay[2][2, 3].astype(int), overlay[2][2, 1].astype(int)
    assert moving[0] > still[0] + 50 and abs(still - 100).max() <= 2
    assert np.abs(moving - (np.array(TINT) * 0.55 + 100 * 0.45)).max() <= 3


def test_videos_without_masks_or_timestamps(tmp_path):
    written = write_videos(ramp_scene(frames=3, dynamic=False), tmp_path)
    assert written == ["depth.gif", "depth.mp4", "conf.gif", "conf.mp4"]
    assert decode_mp4(tmp_path / "conf.mp4")[1] == pytest.approx(10.0)  # the default rate
    write_videos(ramp_scene(frames=3), tmp_path, fps=4.0)
    assert decode_gif(tmp_path / "depth.gif")[1] == 250
    with pytest.raises(OptionError):
        write_videos(ramp_scene(frames=3), tmp_path, fps=0.0)


def test_frame_rate_from_timestamps():
    assert frame_rate(np.array([0.0, 0.1, 0.2, 0.4, 0.5])) == pytest.approx(10.0)  # median step
    assert frame_rate(None) == frame_rate(np.array([3.0])) == 10.0
    assert frame_rate(np.zeros(4), default=7.0) == 7.0
