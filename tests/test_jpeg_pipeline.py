"""The fused decode (`keras_convnets.data.decode`): only the kept window of a JPEG is decoded, with the draws of the
decode-then-crop transforms of `augment`, and the pipelines that use it (image folders; TFRecord shards are in
test_tfrecord.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf

from keras_convnets import data
from keras_convnets.data import decode as dec
from keras_convnets.data.augment import _to_uint8, _train_transform, eval_transform


def photo(shape=(375, 500), seed=0) -> np.ndarray:
    """A uint8 RGB image with smooth regions, edges and texture (noise alone is not what JPEGs hold)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    low = rng.normal(0, 110, (1, 3, 4, 3)).astype("float32")
    image = tf.image.resize(low, (h, w), method="bicubic")[0].numpy() + 128
    image += rng.normal(0, 20, (h, w, 3)).astype("float32")
    return np.clip(image, 0, 255).astype("uint8")


def jpeg(image, quality=90) -> bytes:
    return tf.io.encode_jpeg(image, quality=quality).numpy()  # 4:2:0 chroma, as most photos


def pil_bytes(image, mode: str, fmt: str = "JPEG") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).convert(mode).save(out, fmt, quality=90)
    return out.getvalue()


@pytest.fixture(scope="module")
def samples():
    """Encoded images of several kinds: wide and tall JPEGs, a small one, PNG, grayscale and CMYK JPEGs."""
    return {
        "wide": jpeg(photo((375, 500), 1)),
        "tall": jpeg(photo((500, 333), 2)),
        "small": jpeg(photo((150, 180), 3)),  # upscaled by "scale"
        "png": tf.io.encode_png(photo((200, 260), 4)).numpy(),
        "gray": pil_bytes(photo((300, 240), 5), "L"),
        "cmyk": pil_bytes(photo((240, 300), 6), "CMYK"),
    }


# ------------------------------------------------------------------------------------------ decoding a window


def test_decoding_a_window_equals_decoding_all_then_slicing():
    encoded = jpeg(photo((375, 500), 7))
    full = tf.io.decode_jpeg(encoded, channels=3).numpy()
    shape = tf.image.extract_jpeg_shape(encoded)
    rng = np.random.default_rng(0)
    windows = [(0, 0, 375, 500), (16, 16, 100, 100), (13, 17, 200, 301), (0, 499, 375, 1), (374, 0, 1, 500)]
    for y, x in rng.integers(0, 370, (40, 2)):
        windows.append((int(y), int(x), int(rng.integers(1, 376 - y)), int(rng.integers(1, 501 - x))))
    plain_worst = 0
    for top, left, height, width in windows:
        expected = full[top : top + height, left : left + width]
        window = [tf.constant(v) for v in (top, left, height, width)]
        np.testing.assert_array_equal(dec._decode_window_jpeg(encoded, shape, window).numpy(), expected)
        plain = tf.image.decode_and_crop_jpeg(encoded, [top, left, height, width], channels=3).numpy()
        plain_worst = max(plain_worst, int(np.abs(plain.astype(int) - expected).max()))
    # why the extra column: libjpeg-turbo's cropped decode upsamples the edge columns' chroma alone (11 measured)
    assert plain_worst > 2


@pytest.mark.parametrize("kind", ["gray", "cmyk", "png"])
def test_grayscale_cmyk_and_png_decode_to_three_channels(samples, kind):
    encoded = samples[kind]
    full = dec.decode_image_bytes(encoded).numpy()
    assert full.ndim == 3 and full.shape[-1] == 3
    pixels, _ = dec._decode_cropped(tf.constant(encoded), lambda h, w: ((h // 4, w // 3, h // 2, w // 2), ()))
    h, w = full.shape[:2]
    np.testing.assert_array_equal(pixels.numpy(), full[h // 4 : h // 4 + h // 2, w // 3 : w // 3 + w // 2])


# ------------------------------------------------------------------------------------------ the transforms


@tf.function
def _fused_and_old(contents, seed, augmentation, size):
    old = _train_transform(dec.decode_image_bytes(contents), seed, augmentation=augmentation, size=size, flip=True)
    return dec.decode_train(contents, seed, augmentation=augmentation, size=size, flip=True), old


@pytest.mark.parametrize("kind", ["wide", "tall", "small", "png", "gray"])
def test_scale_decodes_the_window_of_the_same_crop(samples, kind):
    """Same seed, same side, same offset, same flip: the fused "scale" equals resizing the whole image and cropping
    to float rounding (max 0.0034 of 255 measured), at 224 and at 64."""
    contents = tf.constant(samples[kind])
    for size, seeds in ((224, range(6)), (64, range(6, 16))):
        for s in seeds:
            fused, old = _fused_and_old(contents, tf.constant([s, 11], tf.int64), "scale", size)
            assert fused.shape == (size, size, 3)
            np.testing.assert_allclose(fused.numpy(), old.numpy(), atol=0.01, rtol=0)


@pytest.mark.parametrize("kind", ["wide", "png"])
def test_inception_decodes_the_same_box_and_resizes_it_bilinearly(samples, kind):
    """The box of the decode-then-crop path for the same seed, decoded alone, resized with plain bilinear (the
    Inception reference's and the TF Model Garden's resize), flipped by the same draw."""
    contents = tf.constant(samples[kind])
    full = dec.decode_image_bytes(contents)
    for s in range(12):
        seed = tf.constant([s, 5], tf.int64)
        seeds = tf.random.experimental.stateless_split(seed, 3)
        begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(full),
            bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
            seed=seeds[0],
            min_object_covered=0.0,
            aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(0.08, 1.0),
            max_attempts=10,
            use_image_if_no_bounding_boxes=True,
        )
        expected = tf.image.resize(tf.slice(full, begin, extent), (96, 96), method="bilinear")
        expected = tf.image.stateless_random_flip_left_right(expected, seeds[2])
        fused = dec.decode_train(contents, seed, augmentation="inception", size=96, flip=True)
        # flipped before the resize: the same samples, mirrored, to float rounding (0.001 of 255 measured)
        np.testing.assert_allclose(fused.numpy(), expected.numpy(), atol=0.005, rtol=0)


def test_inception_boxes_follow_szegedy_area_and_aspect(samples):
    """Over 300 draws on a 500x375 JPEG: 8%-100% of the area, aspect ratio 3/4-4/3 (to the pixel's rounding)."""
    contents = tf.constant(samples["wide"])
    shape = tf.image.extract_jpeg_shape(contents)
    areas, aspects = [], []
    for s in range(300):
        (_, _, h, w), _ = dec._inception_window(tf.constant([s, 1], tf.int64))(shape[0], shape[1])
        areas.append(int(h) * int(w) / (375 * 500))
        aspects.append(int(w) / int(h))
    assert 0.08 - 0.01 <= min(areas) and max(areas) <= 1.0
    assert 3 / 4 - 0.02 <= min(aspects) and max(aspects) <= 4 / 3 + 0.02
    assert 0.3 < np.mean(areas) < 0.7  # not always the whole image, not always the smallest


@pytest.mark.parametrize("kind", ["wide", "tall", "png", "gray"])
def test_evaluation_crops_equal_the_decode_then_crop_ones(samples, kind):
    """ "inception": bit-identical (the same pixels through the same resize); "scale": off by one level in at most
    0.1% of the pixels (rounding to uint8 of sums that differ by float rounding; 0.006% measured)."""
    contents = tf.constant(samples[kind])
    full = dec.decode_image_bytes(contents)
    for augmentation in ("inception", "scale"):
        fused = _to_uint8(dec.decode_eval(contents, augmentation=augmentation, size=224)).numpy().astype(int)
        old = _to_uint8(eval_transform(full, augmentation=augmentation, size=224)).numpy().astype(int)
        assert fused.shape == (224, 224, 3)
        if augmentation == "inception":
            np.testing.assert_array_equal(fused, old)
        else:
            assert np.abs(fused - old).max() <= 1 and (fused != old).mean() < 1e-3


@pytest.mark.parametrize("augmentation", ["scale", "inception"])
def test_a_jpeg_decodes_only_its_window(samples, monkeypatch, augmentation):
    """Run eagerly (tf.cond then runs only the branch taken): a JPEG never reaches the whole-image decoders, and
    `decode_and_crop_jpeg` is asked for a window (the crop and one column each side) smaller than the image.
    Equality with decode-then-crop alone cannot tell this from a whole decode; this can."""
    windows = []
    crop = tf.image.decode_and_crop_jpeg

    def recording(contents, window, **kwargs):
        windows.append(window.numpy().tolist())
        return crop(contents, window, **kwargs)

    def whole(*args, **kwargs):
        raise AssertionError("a JPEG was decoded whole")

    monkeypatch.setattr(tf.image, "decode_and_crop_jpeg", recording)
    monkeypatch.setattr(dec, "decode_image_bytes", whole)
    for module, name in (
        (tf.io, "decode_jpeg"),
        (tf.io, "decode_image"),
        (tf.image, "decode_jpeg"),
        (tf.image, "decode_image"),
    ):
        monkeypatch.setattr(module, name, whole)
    encoded = samples["wide"]  # 375 x 500
    for seed in range(4):
        out = dec.decode_train(encoded, tf.constant([seed, 1]), augmentation=augmentation, size=64, flip=True)
        assert out.shape == (64, 64, 3)
    if augmentation == "scale":
        out = dec.decode_eval(encoded, augmentation="scale", size=64)
        assert out.shape == (64, 64, 3)
    assert len(windows) == (5 if augmentation == "scale" else 4)
    for top, left, height, width in windows:
        assert 0 <= top and 0 <= left and top + height <= 375 and left + width <= 500
        assert height * width < 0.9 * 375 * 500  # not the whole image
    # the inception evaluation crop (the central 87.5%) decodes whole, by design: most of the image is kept
    with pytest.raises(AssertionError, match="decoded whole"):
        dec.decode_eval(encoded, augmentation="inception", size=64)


def test_the_fused_pipeline_graph_holds_the_cropping_decoder(jpeg_folder):
    """The traced tf.data graph of a fused training pipeline holds DecodeAndCropJpeg (in its JPEG branch; the
    eager test above shows that branch is the one a JPEG takes); the decode-then-crop one does not."""
    d = data.load_dataset(jpeg_folder)

    def ops(decode):
        ds = data.train_pipeline(d, batch_size=5, image_size=32, augmentation="inception", decode=decode)
        graph = tf.compat.v1.GraphDef.FromString(ds._as_serialized_graph().numpy())
        nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
        return {n.op for n in nodes}

    assert "DecodeAndCropJpeg" in ops("fused")
    assert "DecodeAndCropJpeg" not in ops("full")


def test_bad_decode_argument():
    with pytest.raises(ValueError, match=r"`decode` must be one of 'fused', 'full'. Received: decode='jpeg'"):
        data.train_pipeline(data.load_digits(), batch_size=8, image_size=16, decode="jpeg")
    with pytest.raises(ValueError, match="`decode` must be one of"):
        data.eval_pipeline(data.load_digits(), batch_size=8, image_size=16, decode=None)


# ------------------------------------------------------------------------------------------ pipelines


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory):
    """An image folder of 24 training JPEGs (60x80 and 80x60) in 3 classes, 6 validation ones and a PNG."""
    root = tmp_path_factory.mktemp("jpegs")
    for split, count in (("train", 24), ("validation", 6)):
        for i in range(count):
            folder = root / split / f"c{i % 3}"
            folder.mkdir(parents=True, exist_ok=True)
            shape = (60, 80) if i % 2 else (80, 60)
            (folder / f"{i:03d}.jpg").write_bytes(jpeg(photo(shape, 100 + i)))
    (root / "train" / "c0" / "zz.png").write_bytes(tf.io.encode_png(photo((70, 70), 99)).numpy())
    return str(root)


def batches_of(ds, count):
    out = []
    for x, y in ds.take(count):
        out.append((x.numpy(), y.numpy()))
    return out


@pytest.mark.parametrize("augmentation", ["scale", "inception"])
def test_folder_pipeline_fused_equals_full(jpeg_folder, augmentation):
    """Same files, same order, same draws: the fused and the decode-then-crop pipelines give the same batches to
    float rounding ("inception" resizes its crops bilinearly, without antialiasing, on both paths, as its
    evaluation crop does), and their evaluation pipelines the same images."""
    d = data.load_dataset(jpeg_folder)
    assert d.num_train == 25
    kwargs = dict(batch_size=5, image_size=32, augmentation=augmentation, seed=3, epochs=2)
    fused = batches_of(data.train_pipeline(d, decode="fused", **kwargs), 10)
    full = batches_of(data.train_pipeline(d, decode="full", **kwargs), 10)
    assert len(fused) == len(full) == 10  # 5 batches per epoch, 2 epochs
    for (xf, yf), (xo, yo) in zip(fused, full):
        assert xf.shape == (5, 32, 32, 3)
        np.testing.assert_array_equal(yf, yo)
        np.testing.assert_allclose(xf, xo, atol=0.01, rtol=0)
    kwargs = dict(batch_size=4, image_size=32, augmentation=augmentation, cache=False)
    fused = np.concatenate([x for x, _ in batches_of(data.eval_pipeline(d, decode="fused", **kwargs), 2)])
    full = np.concatenate([x for x, _ in batches_of(data.eval_pipeline(d, decode="full", **kwargs), 2)])
    assert fused.shape == (6, 32, 32, 3) and np.abs(fused - full).max() <= 1


def test_folder_pipeline_inception_resumes_and_reads_a_png(jpeg_folder):
    d = data.load_dataset(jpeg_folder)
    kwargs = dict(batch_size=5, image_size=40, augmentation="inception", seed=1, epochs=2)
    whole = batches_of(data.train_pipeline(d, **kwargs), 10)
    resumed = batches_of(data.train_pipeline(d, initial_epoch=1, **kwargs), 5)
    for (x, y), (xr, yr) in zip(whole[5:], resumed):
        np.testing.assert_array_equal(x, xr)
        np.testing.assert_array_equal(y, yr)
    labels = np.concatenate([y for _, y in whole[:5]])
    assert sorted(np.bincount(labels, minlength=3)) == [8, 8, 9]  # each of the 25 images once in epoch 0
    assert not np.array_equal(whole[0][0], whole[5][0])


def test_two_input_pipelines_read_disjoint_files_covering_the_folder(jpeg_folder):
    """Input pipelines 0 and 1 of 2 each take every other file of the epoch's permutation, before decoding: no
    file is read by both, and together they read all 24 (2 replicas of batch 4, 3 steps an epoch)."""
    d = data.subset(data.load_dataset(jpeg_folder), max_train=24)
    paths, labels = d.train_files
    order = tf.random.experimental.stateless_shuffle(tf.range(24, dtype=tf.int64), seed=[0, 0]).numpy()
    seen = []
    for pipeline in (0, 1):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2)
        ds = data.train_pipeline(d, batch_size=8, image_size=24, augmentation="inception", input_context=context)
        batches = batches_of(ds, 10)
        assert len(batches) == 3 and all(x.shape == (4, 24, 24, 3) for x, _ in batches)
        mine = order[pipeline::2]  # the epoch's permutation (seed 0, epoch 0), every other file
        np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), labels[mine])
        seen.append({paths[i] for i in mine})
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(paths)


def test_preprocessing_fast_path_is_the_formula():
    x = tf.random.stateless_uniform([2, 6, 5, 3], [1, 2], maxval=255.0)
    rgb = data.Preprocessing.mean_rgb([123.68, 116.78, 103.94], [58.4, 57.1, 57.4])
    for p in (rgb, data.Preprocessing.mean_rgb([1.0, 2.0, 3.0]), data.Preprocessing.inception()):
        np.testing.assert_array_equal(p(x).numpy(), ((x - p.mean) / p.std).numpy())
    np.testing.assert_array_equal(data.Preprocessing.none()(x).numpy(), x.numpy())
    mean_image = data.Preprocessing.mean_image(x.numpy())
    np.testing.assert_array_equal(mean_image(x).numpy(), (x - mean_image.mean).numpy())


def test_the_benchmarks_before_pipeline_is_the_old_full_decode_path(jpeg_folder, monkeypatch):
    """benchmarks/data.py times the pipeline as it was before the fused decode, from its own copy of the old
    transforms: for "scale" its batches are those of today's `decode="full"` (same files, order, draws and
    arithmetic); for "inception" those of `decode="full"` with the square resize antialiased, as every resize was
    then, and not today's plain bilinear batches (so a change to the package's arithmetic cannot move the
    baseline unseen)."""
    from benchmarks import data as bench
    from keras_convnets.data import augment

    d = data.subset(data.load_dataset(jpeg_folder), max_train=20)

    def compare(augmentation, old_arithmetic):
        kwargs = dict(augmentation=augmentation, batch=5, size=32)
        before = batches_of(bench.before_pipeline(d, pipeline="train", **kwargs), 5)
        before_eval = batches_of(bench.before_pipeline(d, pipeline="eval", **kwargs), 1)
        with monkeypatch.context() as patch:
            if old_arithmetic:
                resize = augment._resize_square
                patch.setattr(augment, "_resize_square", lambda image, size, antialias=True: resize(image, size))
            full = batches_of(bench.jpeg_dataset(d, pipeline="train", decode={"decode": "full"}, **kwargs), 5)
            full_eval = batches_of(bench.jpeg_dataset(d, pipeline="eval", decode={"decode": "full"}, **kwargs), 1)
        for (_, yb), (_, yf) in zip(before, full):
            np.testing.assert_array_equal(yb, yf)
        train_gap = max(float(np.abs(xb - xf).max()) for (xb, _), (xf, _) in zip(before, full))
        eval_gap = float(np.abs(before_eval[0][0] - full_eval[0][0]).max())
        return train_gap, eval_gap

    assert compare("scale", old_arithmetic=False) == pytest.approx((0.0, 0.0), abs=1e-4)
    assert compare("inception", old_arithmetic=True) == pytest.approx((0.0, 0.0), abs=1e-4)
    train_gap, eval_gap = compare("inception", old_arithmetic=False)  # today's plain bilinear differs
    assert train_gap > 1.0 and eval_gap > 1.0


@pytest.mark.slow
def test_jpeg_benchmark_smoke():
    """The data benchmark on its synthetic JPEG set: every pipeline, source and decode path gives a rate."""
    from benchmarks import common
    from benchmarks import data as bench

    report = bench.jpeg_benchmark(smoke=True, augmentations=("inception",))
    headers, rows = common.parse_markdown_table(report)
    assert headers[:4] == ["pipeline", "augmentation", "source", "decode"]
    expected = []
    for pipeline in ("train", "eval"):
        expected += [[pipeline, "inception", "folder", d] for d in ("before", "full", "fused")]
        expected += [[pipeline, "inception", "tfrecord", d] for d in ("full", "fused")]
    assert [row[:4] for row in rows] == expected
    assert all(float(row[5].replace(",", "")) > 0 for row in rows)
    ratios = [row[6] for row in rows]
    assert ratios[0] == "1" and all(float(r) > 0 for r in ratios[1:3]) and ratios[3:5] == ["-", "-"]
    assert [row[7] for row in rows][1] == "1"  # the full decode against itself


@pytest.mark.parametrize("decode", ["fused", "full"])
def test_unreadable_files_leave_every_epoch_and_every_workers_share_its_full_length(jpeg_folder, tmp_path, decode):
    """3 of 28 listed training files do not decode: 7 steps of 4 an epoch were listed, 25 files decode. Each epoch is
    still 7 batches (the epoch's file order wraps around to its first files), so that epoch 2 of a run resumed
    there is epoch 2 of the uninterrupted run, and each of two workers' shares is its 7 steps of 2 (a short share
    would stop one worker's input while the other waits in an all-reduce)."""
    import shutil

    root = tmp_path / "folder"
    shutil.copytree(jpeg_folder, root)
    whole_file = jpeg(photo((60, 80), 7))
    scan = whole_file.index(b"\xff\xda")  # the start-of-scan marker, then its header's length
    broken = whole_file[: scan + 2 + int.from_bytes(whole_file[scan + 2 : scan + 4], "big") + 4]
    for i in range(3):  # headers Pillow reads (so listed), no image data: every decode and cropped decode fails
        (root / "train" / f"c{i}" / "broken.jpg").write_bytes(broken)
    d = data.load_dataset(str(root))
    assert d.num_train == 28
    kwargs = dict(batch_size=4, image_size=24, augmentation="inception", seed=5, decode=decode)
    whole = batches_of(data.train_pipeline(d, epochs=3, **kwargs), 100)
    assert len(whole) == 21
    resumed = batches_of(data.train_pipeline(d, epochs=3, initial_epoch=2, **kwargs), 100)
    assert len(resumed) == 7
    for (x, y), (xr, yr) in zip(whole[14:], resumed):
        np.testing.assert_array_equal(y, yr)
        np.testing.assert_allclose(x, xr, atol=1e-4, rtol=0)
    for pipeline in (0, 1):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2)
        share = batches_of(data.train_pipeline(d, epochs=2, input_context=context, **kwargs), 100)
        assert [x.shape[0] for x, _ in share] == [2] * 14  # 7 steps of one replica's 2 images, 2 epochs
