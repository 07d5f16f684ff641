"""The dataset interface and the procedural dSprites renderer (numpy only: no backend is involved)."""

import subprocess
import sys
import time

import numpy as np
import pytest

from collapse_tui.data import DATASET_NAMES, GroundTruthDataset, ProceduralDSprites, get_dataset
from collapse_tui.data import dsprites
from collapse_tui.data.dsprites import FACTOR_SIZES, render

N_IMAGES = 737_280
SQUARE, ELLIPSE, HEART = 0, 1, 2


@pytest.fixture(scope="module")
def ds():
    return get_dataset("dsprites")


def img(shape=SQUARE, scale=5, orientation=0, x=0, y=0):
    """One rendered image (64, 64) from factor classes."""
    return render(np.array([[shape, scale, orientation, x, y]]))[0, ..., 0]


def centre_of_mass(im):
    rows, cols = np.nonzero(im)
    return rows.mean(), cols.mean()


# Sprites copied pixel by pixel from frames of the official dSprites demo animation (scale 1, posX = posY
# = 0): factor classes, the row and column of the bounding box's top-left pixel, how many pixels the
# render may differ by (the fitted heart is 4 edge pixels off once rotated; the others are exact), pixels.
OFFICIAL = {
    "heart, orientation 0": ((HEART, 5, 0, 0, 0), (7, 6), 0, """
...#####....#####...
..#######..#######..
.########..########.
.##################.
####################
####################
.##################.
.##################.
..################..
..################..
...##############...
....############....
.....##########.....
......########......
.......######.......
........####........
.........##.........
"""),
    "heart, orientation 5 (46 degrees)": ((HEART, 5, 5, 0, 0), (5, 5), 4, """
........######...
.......########..
.......#########.
......##########.
......##########.
......###########
.......##########
.################
.################
#################
#################
#################
#################
#################
.################
..###############
....#############
"""),
    "ellipse, orientation 0": ((ELLIPSE, 5, 0, 0, 0), (9, 3), 0, """
.......############.......
.....################.....
...####################...
..######################..
.########################.
.########################.
##########################
##########################
.########################.
.########################.
..######################..
...####################...
.....################.....
.......############.......
"""),
    "square, orientation 5 (46 degrees)": ((SQUARE, 5, 5, 0, 0), (3, 3), 0, """
............##............
...........####...........
..........######..........
.........########.........
........##########........
.......############.......
......##############......
.....################.....
....##################....
...####################...
..######################..
.########################.
##########################
##########################
.########################.
..######################..
...####################...
....##################....
.....################.....
......##############......
.......############.......
........##########........
.........########.........
..........######..........
...........####...........
............##............
"""),
}


# ---------------------------------------------------------------------------------------------- grid
def test_grid_matches_the_official_layout(ds):
    assert isinstance(ds, GroundTruthDataset) and isinstance(ds, ProceduralDSprites)
    assert len(ds) == N_IMAGES and ds.num_factors == 5
    assert ds.name == "dsprites" and ds.source == "procedural"
    assert ds.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert ds.factor_sizes == (3, 6, 40, 32, 32) == tuple(ds.factors_num_values)
    assert ds.strides.tolist() == [245_760, 40_960, 1024, 32, 1]
    assert ds.image_shape == (64, 64, 1) and ds.observation_shape == [64, 64, 1]
    assert ds.input_scale == 1.0
    assert [len(v) for v in ds.factor_values] == list(ds.factor_sizes)
    np.testing.assert_allclose(ds.factor_values[0], [1, 2, 3])
    np.testing.assert_allclose(ds.factor_values[1], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    np.testing.assert_allclose(ds.factor_values[2][[0, 1, 39]], [0, 2 * np.pi / 39, 2 * np.pi])
    np.testing.assert_allclose(ds.factor_values[3][[0, 1, 31]], [0, 1 / 31, 1])
    np.testing.assert_allclose(ds.factor_values[4], ds.factor_values[3])
    np.testing.assert_allclose(ds.factor_value([[2, 5, 39, 31, 0]]), [[3, 1.0, 2 * np.pi, 1.0, 0.0]])


def test_factor_values_cannot_be_overwritten_by_accident(ds):
    with pytest.raises(ValueError):
        ds.factor_values[1][0] = 7.0


def test_index_factor_round_trip(ds):
    rs = np.random.RandomState(0)
    boundary = [0, 1, 31, 32, 1023, 1024, 40_959, 40_960, 245_759, 245_760, N_IMAGES - 2, N_IMAGES - 1]
    idx = np.concatenate([boundary, rs.randint(0, N_IMAGES, 2000)])
    factors = ds.index_to_factors(idx)
    assert factors.dtype == np.int64 and factors.shape == (len(idx), 5)
    assert (factors >= 0).all() and (factors < np.array(FACTOR_SIZES)).all()
    back = ds.factors_to_index(factors)
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, idx)
    # Hand-computed positions in the C-order grid.
    assert ds.index_to_factors([0]).tolist() == [[0, 0, 0, 0, 0]]
    assert ds.index_to_factors([31, 32]).tolist() == [[0, 0, 0, 0, 31], [0, 0, 0, 1, 0]]
    assert ds.index_to_factors([N_IMAGES - 1]).tolist() == [[2, 5, 39, 31, 31]]
    assert ds.index_to_factors(245_760 + 40_960 * 2 + 1024 * 3 + 32 * 4 + 5).tolist() == [[1, 2, 3, 4, 5]]
    assert ds.factors_to_index([1, 2, 3, 4, 5]).tolist() == [245_760 + 40_960 * 2 + 1024 * 3 + 32 * 4 + 5]
    # Every index of the grid maps to a distinct factor row and back (the whole grid, arithmetic only).
    everything = np.arange(N_IMAGES)
    np.testing.assert_array_equal(ds.factors_to_index(ds.index_to_factors(everything)), everything)


def test_sampling_is_uniform_seeded_and_distinct(ds):
    f = ds.sample_factors(3000, 1)
    assert f.dtype == np.int64 and f.shape == (3000, 5)
    np.testing.assert_array_equal(f.min(axis=0), 0)
    np.testing.assert_array_equal(f.max(axis=0), np.array(FACTOR_SIZES) - 1)
    np.testing.assert_array_equal(ds.sample_factors(50, np.random.RandomState(4)), ds.sample_factors(50, 4))
    g1 = ds.sample_factors(50, np.random.default_rng(9))
    g2 = ds.sample_factors(50, np.random.default_rng(9))
    np.testing.assert_array_equal(g1, g2)
    assert ds.sample_factors(0, 1).shape == (0, 5)

    a = ds.sample_indices(5000, np.random.RandomState(7))
    np.testing.assert_array_equal(a, ds.sample_indices(5000, np.random.RandomState(7)))
    assert a.dtype == np.int64 and len(np.unique(a)) == 5000 and a.min() >= 0 and a.max() < N_IMAGES
    assert not np.array_equal(a, ds.sample_indices(5000, np.random.RandomState(8)))
    # Uniform over the grid, in random order: the mean index sits mid-grid (its spread is 0.4% of it).
    assert abs(a.mean() - N_IMAGES / 2) < 0.03 * N_IMAGES and not (np.diff(a) > 0).all()
    shapes = np.bincount(ds.index_to_factors(a)[:, 0], minlength=3) / len(a)
    np.testing.assert_allclose(shapes, 1 / 3, atol=0.04)
    assert len(np.unique(ds.sample_indices(300_000, 2))) == 300_000  # the permutation branch
    assert len(np.unique(ds.sample_indices(N_IMAGES, 2))) == N_IMAGES
    with_replacement = ds.sample_indices(N_IMAGES + 10, 3, replace=True)
    assert with_replacement.shape == (N_IMAGES + 10,) and with_replacement.max() < N_IMAGES


# ---------------------------------------------------------------------------------------------- images
def test_images_are_binary_uint8_in_the_requested_order(ds):
    idx = np.array([5, 300_000, 5, N_IMAGES - 1, 0])
    x = ds.images(idx, batch_size=2)
    assert x.shape == (5, 64, 64, 1) and x.dtype == np.uint8
    assert set(np.unique(x).tolist()) == {0, 1}
    np.testing.assert_array_equal(x[0], x[2])
    for i, k in enumerate(idx):
        np.testing.assert_array_equal(x[i], ds.images([k])[0])
        np.testing.assert_array_equal(x[i, ..., 0], img(*ds.index_to_factors([k])[0]))
    assert ds.images([]).shape == (0, 64, 64, 1)
    obs = ds.sample_observations_from_factors(ds.index_to_factors(idx), np.random.RandomState(0))
    assert obs.dtype == np.float32 and obs.shape == (5, 64, 64, 1)
    assert obs.min() == 0.0 and obs.max() == 1.0
    np.testing.assert_array_equal(obs, x.astype(np.float32))
    factors, observations = ds.sample(3, 5)
    np.testing.assert_array_equal(observations, ds.images(ds.factors_to_index(factors)).astype(np.float32))


def test_rendering_is_deterministic(ds):
    idx = ds.sample_indices(300, 11)
    first = ds.images(idx, batch_size=64)
    np.testing.assert_array_equal(first, ds.images(idx, batch_size=300))
    np.testing.assert_array_equal(first, ProceduralDSprites().images(idx))
    order = np.argsort(idx)
    np.testing.assert_array_equal(first[order], ds.images(idx[order], batch_size=7))


def test_only_the_requested_images_are_rendered():
    rendered = []

    class Spy(ProceduralDSprites):
        def _images_batch(self, indices):
            rendered.append(indices.copy())
            return super()._images_batch(indices)

    spy = Spy()
    idx = spy.sample_indices(20_000, 0)
    spy.images(idx, batch_size=4096)
    assert sum(len(r) for r in rendered) == 20_000 and max(len(r) for r in rendered) == 4096
    np.testing.assert_array_equal(np.concatenate(rendered), idx)


def test_rendering_is_fast_enough_to_sample_on_demand(ds):
    # The target is well over 5,000 images/s on one core (about 30,000 measured); this bound only
    # catches a renderer that has become grossly slower, with room for a loaded test machine.
    idx = ds.sample_indices(4000, 1)
    start = time.perf_counter()
    ds.images(idx)
    assert time.perf_counter() - start < 4.0


def test_progress_reports_every_batch_with_the_total(ds):
    calls = []
    ds.images(np.arange(10), progress=lambda done, total: calls.append((done, total)), batch_size=4)
    assert calls == [(4, 10), (8, 10), (10, 10)]
    calls.clear()
    ds.images(np.arange(6), progress=lambda done, total: calls.append((done, total)), batch_size=6)
    assert calls == [(6, 6)]
    calls.clear()
    ds.images([], progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 0)]


# ---------------------------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("which", sorted(OFFICIAL))
def test_sprites_match_the_official_pixels(which):
    factors, (top, left), tolerance, art = OFFICIAL[which]
    rows = art.strip().splitlines()
    expected = np.zeros((64, 64), dtype=np.uint8)
    expected[top:top + len(rows), left:left + len(rows[0])] = [[c == "#" for c in row] for row in rows]
    got = img(*factors)
    assert np.count_nonzero(got != expected) <= tolerance, which


def test_areas_at_scale_1_match_the_measured_sprites():
    square = [img(SQUARE, orientation=o).sum() for o in range(40)]
    heart = [img(HEART, orientation=o).sum() for o in range(40)]
    assert square[0] == square[39] == 400  # 20 x 20 px upright
    assert all(355 <= a <= 380 for a in square[1:39])  # rotated: 364-372 px in the official frames
    assert img(ELLIPSE).sum() == 288
    assert 219 <= min(heart) and max(heart) <= 232  # measured 219-232 across rotations
    # At other positions the sub-pixel centre moves a few edge pixels in or out.
    rs = np.random.RandomState(3)
    pos = rs.randint(0, 32, size=(20, 2))
    for shape, low, high in ((SQUARE, 355, 400), (ELLIPSE, 280, 300), (HEART, 214, 236)):
        areas = [img(shape, orientation=o, x=x, y=y).sum() for o, (x, y) in zip(rs.randint(0, 40, 20), pos)]
        assert low <= min(areas) and max(areas) <= high, (shape, areas)


def test_bounding_boxes_at_scale_1():
    def box(im):
        rows, cols = np.nonzero(im)
        return np.ptp(rows) + 1, np.ptp(cols) + 1

    assert box(img(SQUARE)) == (20, 20)
    assert box(img(ELLIPSE)) == (14, 26)  # long axis horizontal at orientation 0
    assert box(img(HEART)) == (17, 20)  # 17 tall, 20 wide
    # Orientation 20 is 184.6 degrees: the ellipse is horizontal again.
    rows, cols = box(img(ELLIPSE, orientation=20))
    assert cols > 24 and rows < 18


def test_heart_points_down_with_a_notch_on_top():
    h = img(HEART)
    rows, cols = np.nonzero(h)
    top, bottom = rows.min(), rows.max()
    centre_row = 64 * 0.25 - 0.5  # the sprite centre, in row indices
    assert h[:int(centre_row) + 1].sum() > h[int(centre_row) + 1:].sum() + 30  # lobes above, point below
    assert h[bottom].sum() == 2  # the point
    assert h[top].sum() == 10
    # The notch: the top row is two runs of pixels, the row under it too, then one run.
    runs = [np.count_nonzero(np.diff(np.r_[0, h[r], 0].astype(int)) == 1) for r in range(top, top + 4)]
    assert runs[:3] == [2, 2, 2] and runs[3] == 1


def test_orientation_turns_counter_clockwise_on_screen():
    # At orientation 4 (37 degrees), a counter-clockwise turn lifts the ellipse's right end: rows
    # (downwards) fall as columns grow.
    rows, cols = np.nonzero(img(ELLIPSE, orientation=4))
    assert np.corrcoef(rows, cols)[0, 1] < -0.3
    # The heart's lobes (above its centre at orientation 0) swing to the left at a quarter turn.
    r0, c0 = centre_of_mass(img(HEART, orientation=0))
    r10, c10 = centre_of_mass(img(HEART, orientation=10))
    assert r0 < 15.5 - 1 and abs(c0 - 15.5) < 0.1
    assert c10 < 15.5 - 1 and abs(r10 - 15.5) < 1


def test_position_moves_the_centre_of_mass():
    r0, c0 = centre_of_mass(img(SQUARE, x=0, y=0))
    assert (r0, c0) == (pytest.approx(15.5), pytest.approx(15.5))  # centre 64 * 0.25 px, in index terms
    for k in range(32):
        expected = 15.5 + 64 * 0.5 * k / 31
        r, c = centre_of_mass(img(SQUARE, x=k, y=0))
        assert c == pytest.approx(expected, abs=0.6) and r == pytest.approx(r0)  # posX = 0 at the left
        r, c = centre_of_mass(img(SQUARE, x=0, y=k))
        assert r == pytest.approx(expected, abs=0.6) and c == pytest.approx(c0)  # posY = 0 at the top
    # The whole range spans 32 px, as in the official animation (sprite at 6-25 then 38-57).
    _, cols = np.nonzero(img(HEART, x=31))
    assert (cols.min(), cols.max()) == (38, 57)


def test_scale_grows_the_area_monotonically():
    rs = np.random.RandomState(5)
    for shape in range(3):
        for orientation, x, y in zip(rs.randint(0, 40, 4), rs.randint(0, 32, 4), rs.randint(0, 32, 4)):
            areas = [img(shape, s, orientation, x, y).sum() for s in range(6)]
            assert all(a < b for a, b in zip(areas, areas[1:])), (shape, areas)
        ratio = img(shape, 5).sum() / img(shape, 0).sum()
        assert 3.4 < ratio < 4.6  # area goes with scale squared: (1.0 / 0.5)^2 = 4


def test_orientation_0_and_2pi_render_alike(ds):
    rs = np.random.RandomState(6)
    for shape in range(3):
        for scale, x, y in zip(rs.randint(0, 6, 5), rs.randint(0, 32, 5), rs.randint(0, 32, 5)):
            np.testing.assert_array_equal(img(shape, scale, 0, x, y), img(shape, scale, 39, x, y))


def test_sprites_are_never_clipped_by_the_render_window():
    # The renderer evaluates a window around each sprite; evaluate the whole image instead and compare,
    # for the largest sprites at every orientation and every sub-pixel offset of the centre.
    factors = np.array([[s, 5, o, x, 31 - x] for s in range(3) for o in range(40) for x in range(32)])
    scale = dsprites.FACTOR_VALUES[1][factors[:, 1]][:, None, None]
    theta = (2 * np.pi * (factors[:, 2] % 39) / 39)[:, None, None]
    cx = 64 * (0.25 + 0.5 * dsprites.FACTOR_VALUES[3][factors[:, 3]])[:, None, None]
    cy = 64 * (0.25 + 0.5 * dsprites.FACTOR_VALUES[4][factors[:, 4]])[:, None, None]
    centres = np.arange(64) + 0.5
    right = (centres[None, None, :] - cx) / scale
    up = (cy - centres[None, :, None]) / scale
    u = np.cos(theta) * right + np.sin(theta) * up
    v = np.cos(theta) * up - np.sin(theta) * right
    full = dsprites._inside(factors[:, 0], u, v).astype(np.uint8)
    got = render(factors)[..., 0]
    # The two evaluations round differently: a pixel centre lying exactly on an edge could flip.
    assert np.count_nonzero(got != full) <= 2


# ---------------------------------------------------------------------------------------------- factors
def test_changing_any_single_factor_changes_the_image(ds):
    rs = np.random.RandomState(0)
    base = ds.sample_factors(300, rs)
    images = render(base)
    for j in (0, 1, 3, 4):  # shape, scale, pos_x, pos_y: every change shows (checked over the whole grid)
        other = base.copy()
        other[:, j] = (base[:, j] + rs.randint(1, FACTOR_SIZES[j], size=len(base))) % FACTOR_SIZES[j]
        differ = (render(other) != images).reshape(len(base), -1).any(axis=1)
        assert differ.all(), f"changing {ds.factor_names[j]} left some images unchanged"
    # Orientation: a turn of 2 to 8 steps (18 to 74 degrees) always shows. The square's quarter turns
    # (about 10, 19 and 29 steps) and the ellipse's half turn (19 or 20 steps) may not: those are the
    # shapes' symmetries, as in the official data; and 39 steps is the full turn.
    other = base.copy()
    other[:, 2] = (base[:, 2] + rs.randint(2, 9, size=len(base))) % 40
    assert (render(other) != images).reshape(len(base), -1).any(axis=1).all()
    # The heart has no symmetry: its 39 distinct orientations all render differently.
    hearts = render(np.array([[HEART, s, o, 5, 20] for s in (0, 5) for o in range(39)]))
    flat = hearts.reshape(2, 39, -1)
    for s in range(2):
        assert len(np.unique(flat[s], axis=0)) == 39


# ---------------------------------------------------------------------------------------------- errors
def test_invalid_indices_and_factors_are_clear_errors(ds):
    with pytest.raises(ValueError, match=r"indices must be in \[0, 737279\].*737280"):
        ds.images([737_280])
    with pytest.raises(ValueError, match=r"indices must be in .* got -1"):
        ds.index_to_factors([3, -1])
    with pytest.raises(ValueError, match="whole numbers"):
        ds.images([1.5])
    with pytest.raises(ValueError, match="booleans"):
        ds.images(np.array([True, False]))
    with pytest.raises(ValueError, match="1-D"):
        ds.images([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="integers"):
        ds.images(["a"])
    with pytest.raises(ValueError, match=r"factor scale must be in \[0, 5\], got 6"):
        ds.factors_to_index([[0, 6, 0, 0, 0]])
    with pytest.raises(ValueError, match=r"factor pos_y must be in \[0, 31\], got -1"):
        ds.factors_to_index([[0, 0, 0, 0, 0], [0, 0, 0, 0, -1]])
    with pytest.raises(ValueError, match=r"shape \(n, 5\)"):
        ds.factors_to_index([[0, 0, 0]])
    with pytest.raises(ValueError, match="whole numbers"):
        ds.factors_to_index([[0, 0.5, 0, 0, 0]])
    with pytest.raises(ValueError, match="factor orientation"):
        ds.sample_observations_from_factors([[0, 0, 40, 0, 0]])
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        ds.images([0], batch_size=0)


def test_invalid_sampling_requests_are_clear_errors(ds):
    with pytest.raises(ValueError, match="n must be at most 737280"):
        ds.sample_indices(N_IMAGES + 1, 0)
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        ds.sample_indices(-1, 0)
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        ds.sample_factors(2.5, 0)
    with pytest.raises(ValueError, match="random_state must be"):
        ds.sample_factors(3, "seed")


def test_get_dataset_and_its_errors():
    assert set(DATASET_NAMES) >= {"dsprites", "shapes3d"}
    assert isinstance(get_dataset("dsprites", "procedural"), ProceduralDSprites)
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'.*dsprites"):
        get_dataset("mnist")
    with pytest.raises(ValueError, match=r"no source 'nowhere'.*procedural"):
        get_dataset("dsprites", source="nowhere")
    with pytest.raises(ValueError, match=r"option.*'colour'"):
        get_dataset("dsprites", colour=True)


def test_fingerprint_and_description_identify_the_generated_images(ds):
    fp = ds.fingerprint()
    assert fp == f"dsprites-procedural-v{dsprites.RENDERER_VERSION}"
    assert fp == ProceduralDSprites().fingerprint()
    assert "generated" in ds.description and "not the official" in ds.description
    assert "\n" not in ds.description
    assert fp in repr(ds)


def test_data_package_imports_without_any_deep_learning_library():
    code = ("import sys, time; t = time.perf_counter(); import collapse_tui.data; "
            "print(round(time.perf_counter() - t, 3), "
            "sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seconds, loaded = out.stdout.split(" ", 1)
    assert loaded.strip() == "[]"
    assert float(seconds) < 2.0
