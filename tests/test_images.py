"""recon4d.io.images and the image side of recon4d.io.sources: geometry, pixels, order, errors."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from recon4d.errors import InputError, Recon4dError
from recon4d.io import collect_frames, load_images
from recon4d.io.images import crop_geometry, list_image_folder, natural_key, upright_size


def _u8(view: dict) -> np.ndarray:
    """A view's image back as uint8 H×W×3 (exact for values produced by (u8/255-0.5)/0.5)."""
    return torch.round((view["img"][0] + 1) * 127.5).to(torch.uint8).permute(1, 2, 0).numpy()


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, arr: np.ndarray, **kwargs) -> Path:
    Image.fromarray(arr).save(path, **kwargs)
    return path


# --- geometry: the worked examples of docs/formats.md, "Preprocessing" ------------------------

@pytest.mark.parametrize(("src", "size", "square_ok", "out"), [
    ((4032, 3024), 512, False, (512, 384)),
    ((3024, 4032), 512, False, (384, 512)),
    ((1920, 1080), 512, False, (512, 288)),
    ((854, 480), 512, False, (512, 288)),
    ((3000, 2000), 512, False, (512, 336)),
    ((300, 200), 512, False, (512, 336)),
    ((1000, 1000), 512, False, (512, 384)),
    ((1000, 1000), 512, True, (512, 512)),
    ((1001, 449), 512, False, (512, 224)),
    ((513, 100), 512, False, (512, 96)),
    ((640, 480), 224, False, (224, 224)),
    ((480, 640), 224, False, (224, 224)),
])
def test_crop_geometry_matches_spec_examples(src, size, square_ok, out):
    geo = crop_geometry(*src, size=size, square_ok=square_ok)
    x0, y0, x1, y1 = geo.box
    assert (x1 - x0, y1 - y0) == out
    assert geo.lanczos == (max(src) > max(geo.resized))


def test_crop_geometry_224_box_and_filters():
    geo = crop_geometry(640, 480, size=224)
    assert geo.resized == (299, 224) and geo.box == (37, 0, 261, 224) and geo.lanczos
    assert crop_geometry(3000, 2000).resized == (512, 341)  # 341.33 rounds down
    assert not crop_geometry(300, 200).lanczos  # enlarging uses BICUBIC
    assert not crop_geometry(512, 384).lanczos  # same size: BICUBIC no-op


def test_half_to_even_rounding_of_resized_sides():
    # 640x427 -> 512 x 341.6 -> 342; 1024x683 -> 512 x 341.5 -> 342 (even); 1024x681 -> 340.5 -> 340
    assert crop_geometry(640, 427).resized == (512, 342)
    assert crop_geometry(1024, 683).resized == (512, 342)
    assert crop_geometry(1024, 681).resized == (512, 340)


# --- pixels ----------------------------------------------------------------------------------

def test_normalisation_is_float32_division_form():
    # 512x384 needs neither resize nor crop at size 512, so every input level reaches the tensor
    arr = np.zeros((384, 512, 3), np.uint8)
    arr[:256, :256, 0] = np.arange(256, dtype=np.uint8)[None, :]
    arr[:256, :256, 1] = np.arange(256, dtype=np.uint8)[:, None]
    arr[:, 300:, 2] = 255
    view = load_images([arr])[0]
    img = view["img"]
    assert img.dtype == torch.float32 and img.shape == (1, 3, 384, 512)
    assert img.is_contiguous()
    f = arr.transpose(2, 0, 1)[None].astype(np.float32)
    expected = (f / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
    np.testing.assert_array_equal(img.numpy(), expected)
    assert img.min() == -1 and img.max() == 1
    np.testing.assert_array_equal(view["true_shape"], np.array([[384, 512]], np.int32))
    assert view["true_shape"].dtype == np.int32
    assert (view["idx"], view["instance"]) == (0, "0")


def test_files_arrays_and_pil_images_give_identical_views(tmp_path):
    arr = _noise(150, 233)
    png = _save(tmp_path / "noise.png", arr)
    for size in (224, 512):
        from_file = load_images([png], size=size)[0]
        from_array = load_images([arr], size=size)[0]
        with Image.open(png) as pil:
            from_pil = load_images([pil], size=size)[0]
        assert torch.equal(from_file["img"], from_array["img"])
        assert torch.equal(from_file["img"], from_pil["img"])
        np.testing.assert_array_equal(from_file["true_shape"], from_array["true_shape"])


def test_resize_uses_pillow_lanczos_when_shrinking_and_crops_centre():
    arr = _noise(480, 640, seed=1)
    view = load_images([arr], size=224)[0]
    resized = np.asarray(Image.fromarray(arr).resize((299, 224), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(_u8(view), resized[:, 37:261])


def test_grayscale_rgba_and_palette_convert_like_pillow_rgb(tmp_path):
    gray = _noise(384, 512)[..., 0]
    g = _u8(load_images([_save(tmp_path / "g.png", gray)])[0])
    assert (g == gray[..., None]).all()  # replicated to three channels

    rgba = np.zeros((384, 512, 4), np.uint8)
    rgba[..., :3] = (200, 10, 10)  # fully transparent: colour kept, not composited on a background
    np.testing.assert_array_equal(_u8(load_images([_save(tmp_path / "a.png", rgba)])[0]),
                                  np.broadcast_to(np.uint8([200, 10, 10]), (384, 512, 3)))

    pal = Image.fromarray(_noise(384, 512)).quantize(colors=16)
    pal.save(tmp_path / "p.png")
    expected = np.asarray(pal.convert("RGB"))
    np.testing.assert_array_equal(_u8(load_images([tmp_path / "p.png"])[0]), expected)


def test_exif_orientation_is_applied(tmp_path):
    arr = _noise(384, 512, seed=2)  # stored landscape, EXIF 6: shown rotated 90° clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    view = load_images([_save(tmp_path / "o.png", arr, exif=exif)])[0]
    np.testing.assert_array_equal(view["true_shape"], [[512, 384]])
    np.testing.assert_array_equal(_u8(view), np.rot90(arr, k=-1))


def test_16bit_grayscale_clips_like_the_reference_and_warns(tmp_path, caplog):
    values = (np.arange(384 * 512, dtype=np.uint32).reshape(384, 512) % 1024).astype(np.uint16)
    path = _save(tmp_path / "deep.png", values)
    with caplog.at_level(logging.WARNING, logger="recon4d.io.images"):
        out = _u8(load_images([path])[0])
    np.testing.assert_array_equal(out, np.minimum(values, 255).astype(np.uint8)[..., None]
                                  .repeat(3, axis=2))
    assert "deep.png" in caplog.text and "clipped" in caplog.text


def test_non_image_names_are_skipped_without_using_an_index(tmp_path, caplog):
    a = _save(tmp_path / "a.png", _noise(40, 60, 3))
    b = _save(tmp_path / "b.JPG", _noise(40, 60, 4))
    note = tmp_path / "notes.txt"
    note.write_text("not an image")
    with caplog.at_level(logging.DEBUG, logger="recon4d.io.images"):
        views = load_images([a, note, b], size=224)
    assert [(v["idx"], v["instance"]) for v in views] == [(0, "0"), (1, "1")]
    assert torch.equal(views[1]["img"], load_images([b], size=224)[0]["img"])
    assert "notes.txt" in caplog.text


def test_generators_and_frame_stacks_are_accepted():
    stack = np.stack([_noise(64, 96, s) for s in range(3)])
    from_stack = load_images(stack, size=224)
    from_gen = load_images((f for f in stack), size=224)
    assert len(from_stack) == len(from_gen) == 3
    assert all(torch.equal(a["img"], b["img"]) for a, b in zip(from_stack, from_gen, strict=True))


def test_verbose_reports_each_image(capsys):
    load_images([_noise(200, 300)], size=512, verbose=True)
    out = capsys.readouterr().out
    assert "300x200 --> 512x336" in out and "Found 1 images" in out


# --- order -----------------------------------------------------------------------------------

def test_natural_key_orders_numbers_by_value():
    names = ["frame_10.png", "frame_2.png", "frame_1.png", "Frame_3.png", "frame_02.png", "a.png"]
    assert sorted(names, key=natural_key) == [
        "Frame_3.png", "a.png", "frame_1.png", "frame_02.png", "frame_2.png", "frame_10.png"]


def test_folder_is_loaded_in_natural_order(tmp_path):
    for level, name in ((10, "frame_1.png"), (20, "frame_2.png"), (100, "frame_10.png")):
        _save(tmp_path / name, np.full((48, 64, 3), level, np.uint8))
    (tmp_path / "readme.md").write_text("skip me")
    views = load_images(tmp_path, size=224)
    assert [int(_u8(v)[0, 0, 0]) for v in views] == [10, 20, 100]
    assert [v["instance"] for v in views] == ["0", "1", "2"]


# --- bad input -------------------------------------------------------------------------------

def _truncated(tmp_path: Path, fmt: str, name: str) -> Path:
    path = _save(tmp_path / f"full_{name}", _noise(120, 160), format=fmt)
    data = path.read_bytes()
    bad = tmp_path / name
    bad.write_bytes(data[: len(data) // 2])
    return bad


def _bad_file(d: Path, kind: str) -> Path:
    """A file (or missing path) with an image name that cannot be decoded."""
    if kind in ("cut.jpg", "cut.png"):
        return _truncated(d, "JPEG" if kind.endswith("jpg") else "PNG", kind)
    path = d / kind
    if kind == "empty.png":
        path.write_bytes(b"")
    elif kind == "text.png":
        path.write_text("hello, I am text")
    elif kind == "folder.png":
        path.mkdir()
    return path  # "missing.jpg" is never created


@pytest.mark.parametrize("kind", ["cut.jpg", "cut.png", "empty.png", "text.png", "missing.jpg",
                                  "folder.png"])
def test_bad_files_raise_input_error_naming_the_file(tmp_path, kind):
    bad = _bad_file(tmp_path, kind)
    good = _save(tmp_path / "good.png", _noise(40, 60))
    with pytest.raises(InputError) as err:
        load_images([good, bad], size=224)
    assert str(bad) in str(err.value)


def test_problem_is_named_in_the_message(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_images([tmp_path / "empty.png"])
    with pytest.raises(InputError, match="truncated"):
        load_images([_truncated(tmp_path, "JPEG", "cut.jpg")])
    with pytest.raises(InputError, match="not found"):
        load_images([tmp_path / "gone.png"])


def test_system_errors_read_as_text_without_errno_numbers(tmp_path):
    note = tmp_path / "note.png"
    note.write_text("x")
    cases = [(upright_size, tmp_path / "gone.png", "cannot read image (no such file or directory)"),
             (upright_size, tmp_path, "cannot read image (is a directory)"),
             (list_image_folder, note, "cannot list folder (not a directory)")]
    for func, path, problem in cases:
        with pytest.raises(InputError) as err:
            func(path)
        assert str(err.value) == f"{path}: {problem}"


def test_truncated_image_fails_even_if_lenient_loading_was_enabled(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(InputError, match="cut.jpg"):
        load_images([_truncated(tmp_path, "JPEG", "cut.jpg")])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="file permissions are not enforced for root")
def test_unreadable_file(tmp_path):
    path = _save(tmp_path / "locked.png", _noise(40, 60))
    path.chmod(0)
    with pytest.raises(InputError, match="locked.png.*permission"):
        load_images([path])


def test_nothing_loadable_names_the_input(tmp_path):
    with pytest.raises(InputError, match=str(tmp_path)):
        load_images(tmp_path)  # empty folder
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(InputError, match=str(tmp_path)):
        load_images(tmp_path)
    with pytest.raises(InputError, match="list of 1"):
        load_images([tmp_path / "a.txt"])
    with pytest.raises(InputError, match="no-such-dir"):
        load_images(tmp_path / "no-such-dir")


def test_bad_arrays_and_degenerate_images():
    with pytest.raises(InputError, match="frame 1.*float"):
        load_images([_noise(40, 60), np.zeros((40, 60, 3), np.float32)])
    with pytest.raises(InputError, match="frame 0.*shape"):
        load_images([np.zeros((40, 60, 2), np.uint8)])
    with pytest.raises(InputError, match="too elongated"):
        load_images([np.zeros((5, 1000, 3), np.uint8)])


# --- collect_frames on images ------------------------------------------------------------------

def test_collect_frames_from_folder_image_and_list(tmp_path):
    for name in ("img10.jpg", "img9.jpg", "img100.jpg"):
        _save(tmp_path / name, _noise(32, 48))
    src = collect_frames(tmp_path)
    assert src.names == ["img9.jpg", "img10.jpg", "img100.jpg"] and src.timestamps is None
    assert src.frames == [tmp_path / n for n in src.names]
    assert collect_frames(tmp_path, num_frames=2).names == ["img9.jpg", "img10.jpg"]
    assert collect_frames([str(tmp_path)]).names == src.names  # a one-element list

    single = collect_frames(tmp_path / "img9.jpg")
    assert len(single) == 1
    single.require(1)
    with pytest.raises(InputError, match="img9.jpg: 1 frame.*at least 2 needed for image pairs"):
        single.require(2)

    arrays = collect_frames([_noise(32, 48), _noise(32, 48, 1)])
    assert arrays.names == ["frame_000000", "frame_000001"]
    assert len(load_images(arrays.frames, size=224)) == 2


def test_collect_frames_errors(tmp_path):
    (tmp_path / "doc.pdf").write_bytes(b"%PDF")
    with pytest.raises(InputError, match="doc.pdf.*unsupported"):
        collect_frames(tmp_path / "doc.pdf")
    with pytest.raises(InputError, match="doc.pdf.*unsupported"):
        collect_frames([tmp_path / "doc.pdf", tmp_path / "doc.pdf"])
    with pytest.raises(InputError, match="no images"):
        collect_frames(tmp_path)
    with pytest.raises(InputError, match="nothing.png.*no such"):
        collect_frames(tmp_path / "nothing.png")
    with pytest.raises(InputError, match="b.png.*not found"):
        collect_frames([_save(tmp_path / "a.png", _noise(8, 8)), tmp_path / "b.png"])
    with pytest.raises(InputError, match="no input"):
        collect_frames([])
    with pytest.raises(Recon4dError, match="num_frames"):
        collect_frames(tmp_path, num_frames=0)
