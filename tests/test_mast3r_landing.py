"""The dense landing test of a frame's pixels in its keyframe (`recon4d.slam.mast3r_landing`),
on a hand-built scene: a wall, a box the keyframe knows as a mover that has since moved a
little, and an object that came in front of the wall after the keyframe."""

import numpy as np
import pytest
import torch

from recon4d.slam.mast3r_landing import landed_movers

WIDTH, HEIGHT, FOCAL = 40, 30, 40.0
WALL_Z, BOX_Z, NEW_Z = 4.0, 2.0, 1.5
BOX = (-0.6, -0.1, -0.5, 0.1)  # x0, x1, y0, y1 at the keyframe's time (keyframe camera)
NEW = (0.2, 0.55, -0.35, 0.15)  # the object in front of the wall, at the frame's time only


def cast(centre: np.ndarray, planes: list[tuple[float, tuple | None]]) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """Points (H, W, 3, in the keyframe's axes) seen by a pinhole camera at `centre` looking
    along +z, and the index of the plane each pixel sees: planes z = depth, bounded in x, y by
    the box (None: unbounded); the nearest hit wins."""
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH].astype(float)
    rays = np.stack(((u - WIDTH / 2 + 0.5) / FOCAL, (v - HEIGHT / 2 + 0.5) / FOCAL,
                     np.ones_like(u)), -1)
    best = np.full((HEIGHT, WIDTH), np.inf)
    which = np.full((HEIGHT, WIDTH), -1)
    for k, (z, bounds) in enumerate(planes):
        t = (z - centre[2]) / rays[..., 2]
        hit = centre + t[..., None] * rays
        inside = np.ones_like(t, dtype=bool) if bounds is None else (
            (hit[..., 0] >= bounds[0]) & (hit[..., 0] <= bounds[1])
            & (hit[..., 1] >= bounds[2]) & (hit[..., 1] <= bounds[3]))
        nearer = inside & (t > 0) & (t < best)
        best[nearer], which[nearer] = t[nearer], k
    return centre + best[..., None] * rays, which


@pytest.fixture(scope="module")
def scene():
    points_k, seen_k = cast(np.zeros(3), [(WALL_Z, None), (BOX_Z, BOX)])
    moved_box = (BOX[0] + 0.08, BOX[1] + 0.08, BOX[2], BOX[3])
    centre, scale = np.array([0.15, -0.05, 0.2]), 0.5  # the frame's camera, the pair's scale
    world_f, seen_f = cast(centre, [(WALL_Z, None), (BOX_Z, moved_box), (NEW_Z, NEW)])
    T_kf = np.eye(4)
    T_kf[:3, :3] *= scale
    T_kf[:3, 3] = centre
    points_f = (world_f - centre) / scale  # in the frame's camera, at the pair's scale
    return (torch.tensor(points_k, dtype=torch.float32), torch.from_numpy(seen_k == 1),
            torch.tensor(points_f, dtype=torch.float32), torch.tensor(T_kf), seen_f)


def test_the_box_and_the_new_object_are_movers_and_the_wall_is_not(scene):
    points_k, movers_k, points_f, T_kf, seen_f = scene
    movers = landed_movers(points_k, movers_k, points_f, T_kf).movers().numpy()
    wall, box, new = (seen_f == k for k in range(3))
    assert box.sum() > 30 and new.sum() > 60
    assert not (movers & wall).any()  # the uncovered wall lies behind the keyframe's box
    # measured: 130 of 143 box pixels, 150 of 150 of the new object, 0 of 907 wall pixels
    assert (movers & box).sum() >= 0.85 * box.sum()
    assert (movers & new).sum() >= 0.9 * new.sum()


def test_the_new_object_stands_in_free_space_and_the_box_lands_on_the_known_mover(scene):
    """The two kinds apart (a new keyframe keeps the free space and the inside of known
    movers, below)."""
    points_k, movers_k, points_f, T_kf, seen_f = scene
    landing = landed_movers(points_k, movers_k, points_f, T_kf)
    on_mover, free = landing.on_mover.numpy(), landing.in_free_space.numpy()
    box, new = seen_f == 1, seen_f == 2
    assert (free & new).sum() >= 0.9 * new.sum() and not (on_mover & new).any()
    # most of the box lands on the keyframe's box; the strip it moved over the wall stands
    # in front of the wall (measured: 117 of 143 on the mover, 13 in free space)
    assert (on_mover & box).sum() >= 0.75 * box.sum()
    assert 0 < (free & box).sum() < 0.2 * box.sum()
    assert np.array_equal(landing.movers().numpy(), on_mover | free)


def test_a_keyframe_keeps_landings_inside_known_movers_not_at_their_border(scene):
    """`inside_mover`: the landings on a known mover with all four keyframe pixels around them
    movers. A mask grown by a pixel of static wall passes fewer wall pixels on through it."""
    points_k, movers_k, points_f, T_kf, seen_f = scene
    landing = landed_movers(points_k, movers_k, points_f, T_kf)
    on_mover, inside = landing.on_mover.numpy(), landing.inside_mover.numpy()
    box, wall = seen_f == 1, seen_f == 0
    assert not (inside & ~on_mover).any()
    # measured: 108 of the 117 box pixels on the mover, its border row left out
    assert 0.8 * (on_mover & box).sum() <= (inside & box).sum() < (on_mover & box).sum()
    assert np.array_equal(landing.keyframe_movers().numpy(),
                          inside | landing.in_free_space.numpy())
    grown = movers_k.clone()
    grown[1:-1, 1:-1] |= movers_k[:-2, 1:-1] | movers_k[2:, 1:-1] | movers_k[1:-1, :-2] \
        | movers_k[1:-1, 2:]
    halo = landed_movers(points_k, grown, points_f, T_kf)
    # measured: 33 wall pixels on the grown mover, 21 inside it (the frame magnifies 2x)
    on_wall = (halo.on_mover.numpy() & wall).sum()
    assert 0 < (halo.inside_mover.numpy() & wall).sum() < 0.8 * on_wall


def test_without_known_movers_only_what_stands_in_free_space_is_found(scene):
    points_k, movers_k, points_f, T_kf, seen_f = scene
    movers = landed_movers(points_k, torch.zeros_like(movers_k), points_f, T_kf).movers().numpy()
    wall, box, new = (seen_f == k for k in range(3))
    # the box landing on the keyframe's box is the keyframe's surface there: not a mover;
    # where it moved over the wall it stands in front of it (measured 13 of 143)
    assert not (movers & wall).any() and (movers & new).sum() >= 0.9 * new.sum()
    assert 0 < (movers & box).sum() < 0.5 * box.sum()


def test_a_wrong_pose_flags_the_wall_in_front_of_itself(scene):
    """The test trusts the tracked pose: a frame placed 0.5 too far back puts the wall in front
    of the keyframe's."""
    points_k, movers_k, points_f, T_kf, seen_f = scene
    wrong = T_kf.clone()
    wrong[2, 3] -= 0.5
    movers = landed_movers(points_k, movers_k, points_f, wrong).movers().numpy()
    assert (movers & (seen_f == 0)).mean() > 0.3


def test_shapes_that_do_not_fit_are_refused(scene):
    points_k, movers_k, points_f, T_kf, _ = scene
    with pytest.raises(ValueError, match="do not fit"):
        landed_movers(points_k, movers_k[1:], points_f, T_kf)
