"""recon4d.io.video and the video side of recon4d.io.sources, on small clips written with PyAV."""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon4d.errors import InputError, Recon4dError
from recon4d.io import collect_frames, load_images, read_video

av = pytest.importorskip("av")

RATE, COUNT, H, W = 30, 45, 64, 96
CODEC = "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _pattern(k: int) -> np.ndarray:
    """Frame k: a diagonal gradient with a bright bar that moves 2 pixels per frame."""
    y, x = np.mgrid[:H, :W]
    frame = np.stack([x * 2, y * 3, (x + y) % 128 + 64], axis=-1).astype(np.uint8)
    frame[:, 4 + 2 * k: 8 + 2 * k] = (250, 250, 250)
    return frame


WRITTEN = [_pattern(k) for k in range(COUNT)]


def _write(path: Path, rotation: int | None = None) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODEC, rate=RATE)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "8"} if CODEC == "libx264" else {"qscale": "2"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for frame in WRITTEN:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("video") / "clip.mp4")


def _assert_same_frames(frames: list[np.ndarray], indices) -> None:
    """Each decoded frame is close to the frame written at its index, and closest to it."""
    for frame, index in zip(frames, indices, strict=True):
        assert frame.dtype == np.uint8 and frame.shape == (H, W, 3)
        errors = [np.abs(frame.astype(np.int16) - w).mean() for w in WRITTEN]
        assert errors[index] < 4.0, f"frame {index}: mean error {errors[index]:.2f}"
        assert int(np.argmin(errors)) == index


def test_reads_every_frame_with_timestamps(clip):
    video = read_video(clip)
    assert len(video) == COUNT and video.fps == RATE and video.path == clip
    np.testing.assert_array_equal(video.indices, np.arange(COUNT))
    np.testing.assert_allclose(video.timestamps, np.arange(COUNT) / RATE, atol=1e-4)
    _assert_same_frames(video.frames, video.indices)


def _expected_indices(fps: float, count: int = COUNT) -> list[int]:
    """First source frame at or after each 1/fps step, computed exactly with fractions."""
    out, k = [], 0
    while (i := math.ceil(Fraction(k) / Fraction(fps) * RATE)) < count:
        out.append(i)
        k += 1
    return out


@pytest.mark.parametrize("fps", [10, 7, 12.5, 30, 60])
def test_fps_subsamples_by_timestamps(clip, fps):
    video = read_video(clip, fps=fps)
    expected = _expected_indices(min(fps, RATE))
    assert video.indices.tolist() == expected
    np.testing.assert_allclose(video.timestamps, np.array(expected) / RATE, atol=1e-4)
    cells = np.floor(video.timestamps * fps + 1e-6)  # at most one frame per 1/fps interval
    assert (np.diff(cells) > 0).all()
    _assert_same_frames(video.frames, video.indices)


def test_num_frames_and_start(clip):
    assert read_video(clip, num_frames=5).indices.tolist() == [0, 1, 2, 3, 4]
    assert read_video(clip, fps=10, num_frames=4).indices.tolist() == [0, 3, 6, 9]
    late = read_video(clip, start=1.0, fps=15)
    assert late.indices.tolist() == list(range(30, COUNT, 2))
    np.testing.assert_allclose(late.timestamps[0], 1.0, atol=1e-4)
    _assert_same_frames(late.frames, late.indices)


def test_millisecond_time_base_container(tmp_path):
    # Matroska stores times in whole milliseconds: 1/30 s becomes 0.033 s, 2/30 s 0.067 s
    video = read_video(_write(tmp_path / "clip.mkv"), fps=RATE)
    assert video.indices.tolist() == list(range(COUNT))
    assert read_video(tmp_path / "clip.mkv", fps=10).indices.tolist() == _expected_indices(10)


def test_display_rotation_is_applied(tmp_path):
    # set_display_rotation(90): players show the picture turned 90° counter-clockwise
    video = read_video(_write(tmp_path / "rot.mp4", rotation=90), num_frames=3)
    for k, frame in enumerate(video.frames):
        assert frame.shape == (W, H, 3)
        assert np.abs(frame.astype(np.int16) - np.rot90(WRITTEN[k])).mean() < 4.0


def test_bad_videos_raise_input_error_naming_the_file(tmp_path, clip):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    still = tmp_path / "still.png"
    Image.fromarray(WRITTEN[0]).save(still)
    cases = [(text, "cannot read"), (empty, "empty"), (cut, "cannot read"),
             (tmp_path / "gone.mp4", "not found"), (still, "still image"), (tmp_path, "folder")]
    for path, problem in cases:
        with pytest.raises(InputError) as err:
            read_video(path)
        assert str(path) in str(err.value) and problem in str(err.value)
    with pytest.raises(InputError, match="no video frames.*after 5"):
        read_video(clip, start=5.0)


def test_decoder_errors_read_as_text_without_errno_numbers(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    with pytest.raises(InputError) as err:
        read_video(text)  # FFmpeg's AVERROR_INVALIDDATA, "[Errno 1094995529] ..." before
    assert str(err.value) == f"{text}: cannot read video (invalid data found when processing input)"


def test_bad_options(clip):
    for kwargs in ({"fps": 0}, {"fps": -2}, {"num_frames": 0}, {"start": -1.0}):
        with pytest.raises(Recon4dError):
            read_video(clip, **kwargs)


def test_missing_pyav_says_how_to_install(clip, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` raise ImportError
    with pytest.raises(InputError, match=r"pip install 'recon4d\[video\]'"):
        read_video(clip)


def test_collect_frames_from_a_video(clip):
    src = collect_frames(clip, fps=10, num_frames=3)
    assert src.names == ["frame_000000", "frame_000003", "frame_000006"]
    np.testing.assert_allclose(src.timestamps, [0.0, 0.1, 0.2], atol=1e-4)
    assert src.fps == RATE and src.input == str(clip)
    views = load_images(src.frames, size=224)
    assert [v["true_shape"].tolist() for v in views] == [[[224, 224]]] * 3
    assert len(collect_frames([clip])) == COUNT  # a one-element list
