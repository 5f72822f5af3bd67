"""The device pipeline's batched augmentations against their references: for fixed parameters the
pixels of torchvision's (and timm's) ops on the same image, within stated tolerances; drawn
parameters with the distributions of torchvision's and timm's samplers (two-sample
Kolmogorov-Smirnov and binomial tests that fail when a rule differs)."""

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from timm.data import auto_augment as timm_aa
from timm.data.auto_augment import LEVEL_TO_ARG, auto_augment_policy
from timm.data.random_erasing import RandomErasing
from torchvision.transforms import AutoAugmentPolicy, InterpolationMode, RandomResizedCrop
from torchvision.transforms import autoaugment as tv_aa

from vipriors_hub.data import batch_ops
from vipriors_hub.data.batch_autoaugment import KINDS, BatchAutoAugment, timm_argument, timm_policy
from vipriors_hub.data.batch_params import erasing_boxes, resized_crop_boxes
from vipriors_hub.data.batch_transforms import EvalBatch, MoCoV2Batch, StudentBatch
from vipriors_hub.data.transforms import eval_transform, ten_crop_transform

DATA_CONFIG = {"interpolation": "bilinear", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "crop_pct": 0.875}
COLOUR_TOLERANCE = 1e-5
"""Colour, blur and grayscale ops on [0, 1] floats: torchvision's formulas, to float rounding."""
RESIZE_MEAN_TOLERANCE = 2.5
"""crop + resize (roi_align) against torchvision's antialiased bilinear ``resized_crop``, mean absolute
difference in 8-bit levels on a smooth image: equal when enlarging, a box instead of a triangle filter
when shrinking."""
WARP_MEAN_TOLERANCE, WARP_SHARE, NEAREST_WARP_SHARE = 2.5, 0.08, 0.005
"""AutoAugment's warps against PIL's on a noise image: timm's bilinear ones within a mean absolute
difference of 2.5 8-bit levels with at most 8% of the pixels more than one level apart (at the
image's edges, where PIL blends with the fill differently); torchvision's nearest-neighbour ones with at
most 0.5% apart (ties between two source pixels)."""
KS_CRITICAL = 1.95  # two-sample Kolmogorov-Smirnov, alpha = 0.001: D > 1.95 sqrt((n + m) / (n m))


def smooth_image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A smooth photo-like uint8 image ``(3, H, W)`` (bicubic enlargement of random 6x6 colours)."""
    base = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(seed))
    image = torch.nn.functional.interpolate(base, size=(height, width), mode="bicubic", align_corners=False)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)[0]


def canvas_of(image: torch.Tensor) -> torch.Tensor:
    """``image`` as the decoded cache gathers it: ``(1, H + 1, W + 1, 3)``, last row and column repeated."""
    pixels = image.permute(1, 2, 0)
    pixels = torch.cat([pixels, pixels[-1:]], dim=0)
    return torch.cat([pixels, pixels[:, -1:]], dim=1)[None].contiguous()


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    values = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), values, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), values, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def assert_same_distribution(a: np.ndarray, b: np.ndarray) -> None:
    critical = KS_CRITICAL * math.sqrt((len(a) + len(b)) / (len(a) * len(b)))
    assert ks_statistic(a, b) < critical


def assert_rate(flags: torch.Tensor, probability: float) -> None:
    """The share of set ``flags`` is within 4 standard errors of ``probability``."""
    error = math.sqrt(probability * (1 - probability) / flags.numel())
    assert abs(flags.float().mean().item() - probability) < 4 * error + 1e-9


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda x: batch_ops.adjust_brightness(x, torch.tensor([1.3])), lambda x: TF.adjust_brightness(x, 1.3)),
        (lambda x: batch_ops.adjust_contrast(x, torch.tensor([0.6])), lambda x: TF.adjust_contrast(x, 0.6)),
        (lambda x: batch_ops.adjust_saturation(x, torch.tensor([1.4])), lambda x: TF.adjust_saturation(x, 1.4)),
        (lambda x: batch_ops.adjust_hue(x, torch.tensor([0.07])), lambda x: TF.adjust_hue(x, 0.07)),
        (lambda x: batch_ops.adjust_hue(x, torch.tensor([-0.1])), lambda x: TF.adjust_hue(x, -0.1)),
        (batch_ops.grayscale, TF.rgb_to_grayscale),
        (lambda x: batch_ops.gaussian_blur(x, torch.tensor([1.5]), 13), lambda x: TF.gaussian_blur(x, [13, 13], [1.5])),
    ],
)
def test_colour_and_blur_ops_give_torchvisions_pixels(ours, theirs) -> None:
    image = smooth_image(20, 26).float()[None] / 255
    assert (ours(image) - theirs(image)).abs().max() < COLOUR_TOLERANCE


def test_per_sample_parameters_apply_to_their_own_sample_only() -> None:
    images = torch.stack([smooth_image(16, 16, seed).float() / 255 for seed in range(3)])
    factors = torch.tensor([0.7, 1.0, 1.3])
    batched = batch_ops.adjust_saturation(images, factors)
    for index, factor in enumerate(factors.tolist()):
        assert torch.allclose(batched[index], TF.adjust_saturation(images[index], factor), atol=COLOUR_TOLERANCE)


@pytest.mark.parametrize("box", [(3, 5, 30, 25, 16), (10, 2, 20, 30, 24), (0, 0, 52, 40, 64), (0, 0, 52, 40, 20)])
def test_crop_resize_is_torchvisions_resized_crop_within_tolerance(box: tuple[int, ...]) -> None:
    left, top, width, height, size = box
    image = smooth_image(40, 52)
    canvas = canvas_of(image).permute(0, 3, 1, 2).float()
    boxes = torch.tensor([[left, top, left + width, top + height]], dtype=torch.float32)
    ours = batch_ops.crop_resize(canvas, boxes, torch.tensor([0]), size)[0]
    theirs = TF.resized_crop(image.float(), top, left, height, width, [size, size], antialias=True)
    difference = (ours - theirs).abs()
    assert difference.mean() < RESIZE_MEAN_TOLERANCE
    if size >= max(width, height):  # enlarging: the same bilinear sampling
        assert difference.max() < 1e-3


def test_crop_resize_reads_nothing_outside_the_image_on_the_canvas() -> None:
    image = smooth_image(12, 9)
    canvas = torch.full((1, 20, 20, 3), 255, dtype=torch.uint8)
    canvas[:, :13, :10] = canvas_of(image)
    other = canvas.clone()
    other[:, 13:] = 0
    other[:, :, 10:] = 0
    boxes = torch.tensor([[0.0, 0.0, 9.0, 12.0], [4.0, 6.0, 9.0, 12.0]])
    first = batch_ops.crop_resize(canvas.permute(0, 3, 1, 2).float(), boxes, torch.tensor([0, 0]), 7)
    second = batch_ops.crop_resize(other.permute(0, 3, 1, 2).float(), boxes, torch.tensor([0, 0]), 7)
    assert torch.equal(first, second)


def pil_of(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(image.permute(1, 2, 0).numpy())


def tensor_of(picture: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(picture)).permute(2, 0, 1).float()


TIMM_CASES = [
    ("posterize", 5.0, lambda p: timm_aa.posterize(p, 5)),
    ("solarize", 128.0, lambda p: timm_aa.solarize(p, 128)),
    ("autocontrast", 0.0, timm_aa.auto_contrast),
    ("equalize", 0.0, timm_aa.equalize),
    ("invert", 0.0, timm_aa.invert),
    ("color", 1.6, lambda p: timm_aa.color(p, 1.6)),
    ("contrast", 0.4, lambda p: timm_aa.contrast(p, 0.4)),
    ("brightness", 1.5, lambda p: timm_aa.brightness(p, 1.5)),
    ("sharpness", 1.9, lambda p: timm_aa.sharpness(p, 1.9)),
    ("rotate", 20.0, lambda p: timm_aa.rotate(p, 20.0, fillcolor=(124, 116, 104), resample=Image.BILINEAR)),
    ("shear_x", -0.13, lambda p: timm_aa.shear_x(p, -0.13, fillcolor=(124, 116, 104), resample=Image.BILINEAR)),
    ("shear_y", 0.27, lambda p: timm_aa.shear_y(p, 0.27, fillcolor=(124, 116, 104), resample=Image.BILINEAR)),
]
TORCHVISION_CASES = [
    (kind, name, argument)
    for kind, name, argument in [
        ("rotate", "Rotate", -20.0),
        ("shear_x", "ShearX", 0.13),
        ("shear_x", "ShearX", -0.17),
        ("shear_y", "ShearY", -0.27),
        ("translate_x", "TranslateX", 7.0),
        ("translate_y", "TranslateY", -5.0),
        ("posterize", "Posterize", 4.0),
        ("solarize", "Solarize", 100.0),
        ("color", "Color", 0.5),
        ("contrast", "Contrast", -0.5),
        ("brightness", "Brightness", 0.5),
        ("sharpness", "Sharpness", 0.8),
        ("equalize", "Equalize", 0.0),
        ("autocontrast", "AutoContrast", 0.0),
        ("invert", "Invert", 0.0),
    ]
]
GEOMETRIC = {"rotate", "shear_x", "shear_y", "translate_x", "translate_y"}


def run_one(augment: BatchAutoAugment, kind: str, argument: float, image: torch.Tensor) -> torch.Tensor:
    """Operation ``kind`` alone on ``image`` through the batched AutoAugment's grouping."""
    order = torch.tensor([[0]])
    counts = [[0] * (len(KINDS) + 1)]
    counts[0][KINDS.index(kind) + 1] = 1
    params = {"aa_order": order, "aa_argument": torch.tensor([[argument]])}
    return augment(image.float()[None], params, {"aa_counts": counts})[0]


def noise_image(size: int = 32) -> torch.Tensor:
    """Uniform random uint8 pixels ``(3, size, size)``: a warp that samples the wrong source pixel shows."""
    return torch.randint(0, 256, (3, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def assert_close_pixels(kind: str, ours: torch.Tensor, theirs: torch.Tensor, nearest: bool) -> None:
    difference = (ours - theirs).abs()
    if kind in GEOMETRIC and nearest:
        assert (difference > 1).float().mean() < NEAREST_WARP_SHARE
    elif kind in GEOMETRIC:
        assert difference.mean() < WARP_MEAN_TOLERANCE and (difference > 1).float().mean() < WARP_SHARE
    else:
        assert difference.max() <= 1.0


@pytest.mark.parametrize(("kind", "argument", "reference"), TIMM_CASES, ids=[case[0] for case in TIMM_CASES])
def test_timm_policy_ops_give_timms_pixels(kind: str, argument: float, reference) -> None:
    image = noise_image() if kind in GEOMETRIC else smooth_image(32, 32)
    augment = BatchAutoAugment("original", 32, (124, 116, 104))
    ours = run_one(augment, kind, argument, image)
    assert_close_pixels(kind, ours, tensor_of(reference(pil_of(image))), nearest=False)


@pytest.mark.parametrize(
    ("kind", "name", "argument"), TORCHVISION_CASES, ids=[f"{c[0]}{c[2]}" for c in TORCHVISION_CASES]
)
def test_torchvision_policy_ops_give_torchvisions_pixels(kind: str, name: str, argument: float) -> None:
    image = noise_image() if kind in GEOMETRIC else smooth_image(32, 32, seed=1)
    augment = BatchAutoAugment("cifar10", 32, (0, 0, 0))
    reference = tv_aa._apply_op(pil_of(image), name, argument, InterpolationMode.NEAREST, None)
    factor = argument + 1.0 if name in ("Color", "Contrast", "Brightness", "Sharpness") else argument
    assert_close_pixels(kind, run_one(augment, kind, factor, image), tensor_of(reference), nearest=True)


def test_timm_policy_arguments_are_timms_level_arguments() -> None:
    hparams = {"translate_const": 100, "img_mean": (124, 116, 104)}
    for sub_policy in auto_augment_policy("original", hparams):
        for op in sub_policy:
            level = LEVEL_TO_ARG[op.name]
            expected = abs(level(op.magnitude, hparams)[0]) if level is not None else 0.0
            assert timm_argument(op.name, op.magnitude, 100)[0] == pytest.approx(expected)
    assert len(timm_policy("original", 224)) == len(auto_augment_policy("original", hparams))


@pytest.mark.parametrize("size", [(375, 500), (100, 400), (400, 90)])
def test_resized_crop_boxes_follow_torchvisions_sampling_rule(size: tuple[int, int]) -> None:
    height, width = size
    count = 4000
    ours = resized_crop_boxes(torch.tensor([[height, width]] * count), (0.08, 1.0), (3 / 4, 4 / 3), torch.Generator())
    torch.manual_seed(0)
    picture = torch.empty(3, height, width)
    theirs = torch.tensor(
        [RandomResizedCrop.get_params(picture, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(count)], dtype=torch.float64
    )
    ours_h, ours_w = ours[:, 3] - ours[:, 1], ours[:, 2] - ours[:, 0]
    for a, b in [
        (ours_h * ours_w, theirs[:, 2] * theirs[:, 3]),
        (ours_w / ours_h, theirs[:, 3] / theirs[:, 2]),
        (ours[:, 1] / (height - ours_h + 1), theirs[:, 0] / (height - theirs[:, 2] + 1)),
        (ours[:, 0] / (width - ours_w + 1), theirs[:, 1] / (width - theirs[:, 3] + 1)),
    ]:
        assert_same_distribution(a.numpy(), b.numpy())
    assert (ours[:, :2] >= 0).all() and (ours[:, 2] <= width).all() and (ours[:, 3] <= height).all()


def test_erasing_boxes_follow_timms_rule() -> None:
    count, size = 3000, 32
    erased, boxes = erasing_boxes(size, 1.0, torch.Generator().manual_seed(1), count)
    torch.manual_seed(0)
    erasing = RandomErasing(probability=1.0, mode="const", device="cpu")
    areas = []
    for _ in range(count):
        image = torch.ones(3, size, size)
        erasing(image)
        areas.append(float((image == 0).all(dim=0).sum()))
    areas = np.asarray(areas)
    assert_rate(erased, float((areas > 0).mean()))  # the share whose ten tries found a box
    ours = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[erased]
    assert_same_distribution(ours.numpy(), areas[areas > 0])
    half, _ = erasing_boxes(size, 0.5, torch.Generator().manual_seed(2), count)
    assert_rate(half, 0.5 * float((areas > 0).mean()))


def test_moco_parameters_have_mocos_rates_factors_and_random_orders() -> None:
    count = 4000
    params, host = MoCoV2Batch(16, (0.5,) * 3, (0.25,) * 3).draw(torch.tensor([[40, 50]] * count), torch.Generator())
    jittered = sum(host["jitter0"][0][1:])
    assert abs(jittered / count - 0.8) < 4 * math.sqrt(0.16 / count)
    for name, probability in (("gray", 0.2), ("blur", 0.5), ("flip", 0.5)):
        assert abs(host[f"{name}0"][1] / count - probability) < 4 * math.sqrt(probability * (1 - probability) / count)
    factors = params["factors0"].double()
    uniform = np.random.default_rng(0)
    assert_same_distribution(factors[:, 0].numpy(), uniform.uniform(0.6, 1.4, count))
    assert_same_distribution(factors[:, 3].numpy(), uniform.uniform(-0.1, 0.1, count))
    assert_same_distribution(params["sigma0"].double().numpy(), uniform.uniform(0.1, 2.0, count))
    first_ops = np.bincount(np.concatenate([[k] * n for k, n in enumerate(host["jitter0"][0][1:])]), minlength=4)
    expected = jittered / 4
    assert ((first_ops - expected) ** 2 / expected).sum() < 16.3  # chi-square, 3 degrees of freedom, p = 0.001


@pytest.mark.parametrize("policy", ["original", "cifar10"])
def test_autoaugment_draws_sub_policies_uniformly_and_ops_with_their_probabilities(policy: str) -> None:
    count = 6000
    augment = BatchAutoAugment(policy, 32, (124, 116, 104))
    generator = torch.Generator().manual_seed(3)
    chosen = torch.randint(len(augment.table), (count,), generator=torch.Generator().manual_seed(3))
    params, host = augment.draw(count, generator)
    applied = torch.tensor([count - slot[0] for slot in host["aa_counts"]], dtype=torch.float64)
    signed = augment.signed[chosen].T & (augment.arguments[chosen].T > 0)
    negative = (params["aa_argument"].double() < augment.offsets[chosen].T)[signed]
    assert_rate(negative, 0.5)
    kinds_drawn = {KINDS[k] for k in augment.kinds[chosen].flatten().tolist()}
    assert kinds_drawn == {op.kind for ops in augment.table for op in ops}
    expected = augment.probabilities[chosen].sum(dim=0)
    assert torch.all((applied - expected).abs() < 4 * torch.sqrt(expected))
    choices = np.bincount(chosen.numpy(), minlength=len(augment.table))
    assert choices.min() > 0.7 * count / len(augment.table)
    reference = tv_aa.AutoAugment(AutoAugmentPolicy.CIFAR10).policies if policy == "cifar10" else None
    if reference is not None:
        assert [[op.probability for op in ops] for ops in augment.table] == [
            [p for _, p, _ in ops] for ops in reference
        ]


def test_eval_views_match_the_pil_reference_within_tolerance() -> None:
    image = smooth_image(45, 60)
    canvas = canvas_of(image)
    sizes = torch.tensor([[45, 60]])
    for ten_crop in (False, True):
        batch = EvalBatch(24, DATA_CONFIG["crop_pct"], DATA_CONFIG["mean"], DATA_CONFIG["std"], ten_crop)
        params, host = batch.draw(sizes, torch.Generator())
        ours = batch(canvas, params, host)[0]
        reference = (ten_crop_transform if ten_crop else eval_transform)(24, DATA_CONFIG)(pil_of(image))
        assert ours.shape == reference.shape
        assert (ours - reference).abs().mean() * 0.25 * 255 < RESIZE_MEAN_TOLERANCE


def test_student_batch_makes_normalised_images_and_erases_with_noise() -> None:
    images = torch.stack([canvas_of(smooth_image(30, 40, seed))[0] for seed in range(8)])
    batch = StudentBatch(16, (0.5,) * 3, (0.25,) * 3, "original", reprob=1.0)
    params, host = batch.draw(torch.tensor([[30, 40]] * 8), torch.Generator().manual_seed(0))
    first, second = batch(images, params, host), batch(images, params, host)
    assert first.shape == (8, 3, 16, 16) and torch.equal(first, second)
    assert host["erase"][1] > 0
    assert first.min() < -2.0 or first.max() > 2.0  # per-pixel N(0, 1) noise outside [0, 1]'s range
