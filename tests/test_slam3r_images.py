"""SLAM3R's frame loader: numbering, order, slicing before the extension filter, clear errors.

Truth: hand-derived orders from the spec's rules (§2) on small generated files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon4d.errors import InputError
from recon4d.io.slam3r_images import frame_number, load_slam3r_images, order_frames, select_frames


@pytest.mark.parametrize("name, number", [
    ("frame_000123.jpg", 123.0), ("5.jpg", 5.0), ("a_7.png", 7.0), ("12.jpeg", 12.0),
    ("scan2_frame_10.png", 10.0),
])
def test_frame_number_is_the_digit_run_before_the_extension(name: str, number: float) -> None:
    assert frame_number(name, len(Path(name).suffix)) == number


@pytest.mark.parametrize("name", ["f12.jpg", "a7.png", "frame.jpg", "frame_.png"])
def test_names_without_a_number_are_refused(name: str) -> None:
    with pytest.raises(InputError, match=f"^{name}: SLAM3R orders frames by the number"):
        frame_number(name, 4)


def test_numeric_order_with_ties_by_name() -> None:
    names = ["frame_100.jpg", "other_9.png", "frame_10.png", "frame_9.jpg", "frame_2.jpg"]
    assert order_frames(names) == ["frame_2.jpg", "frame_9.jpg", "other_9.png", "frame_10.png",
                                   "frame_100.jpg"]
    # with a postfix its length is the suffix, not the first name's extension
    assert order_frames(["x_3_rgb.png", "x_20_rgb.png"], "_rgb.png") == ["x_3_rgb.png",
                                                                         "x_20_rgb.png"]


def _folder(tmp_path: Path, names: list[str]) -> Path:
    for i, name in enumerate(names):
        path = tmp_path / name
        if path.suffix == ".txt":
            path.write_text("not an image")
        else:
            Image.fromarray(np.full((40, 60, 3), 10 * i, np.uint8)).save(path)
    return tmp_path


def test_slicing_happens_before_non_images_are_skipped(tmp_path: Path) -> None:
    folder = _folder(tmp_path, ["f_1.png", "f_2.png", "notes_3.txt", "f_4.png", "f_5_depth.png",
                                "f_6.png"])
    # ordered: f_1, f_2, notes_3, f_4, f_6 -> [1:] -> [::2] = f_2, f_4 -> [:1] = f_2
    labels = [label for label, _ in select_frames(folder, start_idx=1, img_freq=2, img_num=1)]
    assert labels == ["f_2.png"]
    # [::2] of f_1, f_2, notes_3, f_4, f_6 = f_1, notes_3, f_6: the text file takes a slot
    views = load_slam3r_images(folder, img_freq=2)
    assert [(v["idx"], v["instance"], v["label"]) for v in views] == [(0, "0", "f_1.png"),
                                                                      (1, "1", "f_6.png")]
    assert views[0]["img"].shape == (1, 3, 224, 224)
    assert views[0]["true_shape"].tolist() == [[224, 224]]


def test_list_labels_are_the_given_strings(tmp_path: Path, monkeypatch) -> None:
    _folder(tmp_path, ["b_10.png", "a_2.png"])
    monkeypatch.chdir(tmp_path.parent)
    given = [f"{tmp_path.name}/b_10.png", f"{tmp_path.name}/a_2.png"]
    assert [v["label"] for v in load_slam3r_images(given)] == given[::-1]


def test_bad_inputs_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        load_slam3r_images(tmp_path / "missing")
    folder = _folder(tmp_path, ["f_1.png", "notes_2.txt"])
    with pytest.raises(InputError, match="no image selected"):
        load_slam3r_images(folder, start_idx=1)
    with pytest.raises(InputError, match="img_freq must be >= 0"):
        load_slam3r_images(folder, img_freq=-1)
    (folder / "f_3.png").write_bytes(b"broken")
    with pytest.raises(InputError, match="f_3.png: not a recognised image"):
        load_slam3r_images(folder)
