"""Frame-sequence detection and the motion masks a user gives (`reconstruct --masks DIR`)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from recon4d.errors import InputError
from recon4d.io.sources import is_frame_sequence
from recon4d.matching.coords import loader_geometry
from recon4d.pipeline.user_masks import read_motion_masks


@pytest.mark.parametrize(("names", "expected"), [
    (["frame_0001.png", "frame_0002.png", "frame_0010.png"], True),
    (["00017.jpg", "00018.jpg"], True),
    (["img-3.png", "img-1.png"], True),  # order is the loader's natural sort, not ours
    (["IMG_2041.jpg", "DSC_0001.jpg"], False),  # two cameras' numbering
    (["a.png", "b.png"], False),
    (["frame_1.png", "frame_01.png"], False),  # the same number twice
    (["frame_0001.png"], False),
])
def test_frame_sequences_are_told_from_image_sets(names: list[str], expected: bool) -> None:
    assert is_frame_sequence(names) is expected


def _write(folder, masks: list[np.ndarray], suffix: str = ".png") -> None:
    folder.mkdir()
    for index, mask in enumerate(masks):
        if suffix == ".npy":
            np.save(folder / f"{index}.npy", mask)
        else:
            Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{index}{suffix}")


def test_original_size_masks_are_resized_and_cropped_like_their_frames(tmp_path) -> None:
    # a 64x48 frame at size 32 -> resized 32x24, cropped to 32x16 (rows 4..19 of the resized)
    geometry = loader_geometry(64, 48, size=32)
    assert geometry.model_shape == (16, 32)
    top = geometry.box[1]
    mask = np.zeros((48, 64), bool)
    mask[2 * top:2 * top + 8, :32] = True  # the first 4 model rows, left half
    _write(tmp_path / "m", [mask, np.zeros_like(mask)])
    out = read_motion_masks(tmp_path / "m", 2, (16, 32), [geometry, geometry])
    expected = np.zeros((16, 32), bool)
    expected[:4, :16] = True
    np.testing.assert_array_equal(out[0], expected)
    assert not out[1].any()  # a frame where nothing moves is fine


def test_model_size_masks_need_no_geometry_and_npy_is_read(tmp_path) -> None:
    masks = [np.eye(4, 6, dtype=bool), np.ones((4, 6), bool)]
    _write(tmp_path / "m", masks, ".npy")
    np.testing.assert_array_equal(read_motion_masks(tmp_path / "m", 2, (4, 6)), masks)


def test_wrong_count_and_wrong_size_name_the_problem(tmp_path) -> None:
    _write(tmp_path / "m", [np.ones((4, 6), bool)] * 3)
    with pytest.raises(InputError, match="3 mask file.*for 2 frames"):
        read_motion_masks(tmp_path / "m", 2, (4, 6))
    with pytest.raises(InputError, match=r"mask is 6x4 pixels.*model input size 5x4"):
        read_motion_masks(tmp_path / "m", 3, (4, 5))
    with pytest.raises(InputError, match="masks folder not found"):
        read_motion_masks(tmp_path / "absent", 3, (4, 6))
