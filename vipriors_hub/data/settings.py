"""The data settings every subcommand shares (``--dataset``, ``--data-dir``, ...), light to import:
the command line reads them before anything heavy is loaded."""

from dataclasses import dataclass, field

from ..config import check_settings
from ..errors import VipriorsError

__all__ = [
    "BATCH_POLICIES",
    "CIFAR10_POLICY",
    "DATASETS",
    "DATA_PIPELINES",
    "DEFAULT_FASHION_MNIST_DIR",
    "DEFAULT_IMAGENET_HUB_ID",
    "DataConfig",
    "check_batch_policy",
    "pipeline_for",
]

DATASETS = ("vipriors", "fashion-mnist", "imagefolder", "parquet", "hub")
DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
DEFAULT_IMAGENET_HUB_ID = "ILSVRC/imagenet-1k"
DATA_PIPELINES = ("auto", "device", "pil")
"""``--data-pipeline``: ``device`` decodes every image once into a cache and augments whole batches
where the model runs; ``pil`` decodes and augments image by image in the DataLoader workers (the
reference); ``auto`` takes the faster on the device type (``benchmarks/README.md``)."""
CIFAR10_POLICY = "cifar10"
"""``--aa cifar10``: torchvision's AutoAugment CIFAR-10 policy, the policy of the original code."""
BATCH_POLICIES = ("original", CIFAR10_POLICY)
"""The AutoAugment policies the device pipeline runs (``--aa``): timm's ImageNet policy and torchvision's
CIFAR-10 one."""


def pipeline_for(choice: str, device_type: str) -> str:
    """``device`` or ``pil`` for ``--data-pipeline choice`` on a ``device_type`` device: ``auto`` is the
    device pipeline on a GPU and the PIL pipeline on a CPU, the faster of the two on each (measured:
    ``benchmarks/README.md``, loader throughput)."""
    if choice != "auto":
        return choice
    return "device" if device_type == "cuda" else "pil"


def check_batch_policy(policy: str | None) -> None:
    """Refuse an AutoAugment policy the device pipeline does not run.

    Raises:
        VipriorsError: one line naming the policies it runs and the way out.
    """
    if policy is not None and policy not in BATCH_POLICIES:
        raise VipriorsError(
            f"--aa {policy}: the device pipeline runs {', '.join(BATCH_POLICIES)} (or none); "
            "use --data-pipeline pil for other policies."
        )


@dataclass
class DataConfig:
    """Which data to use; the same fields on every subcommand (``--dataset``, ``--data-dir``, ...)."""

    dataset: str = field(default="vipriors", metadata={"help": "the source", "choices": DATASETS})
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "vipriors: local ImageNet / toolkit folder / parquet shards (none: stream the Hub); "
            f"fashion-mnist: the IDX files ({DEFAULT_FASHION_MNIST_DIR}); imagefolder / parquet: the folder"
        },
    )
    split_lists: str | None = field(
        default=None, metadata={"help": "folder with the VIPriors train/val/test.pickle (none: download, cache)"}
    )
    per_class: int | None = field(default=None, metadata={"help": "training images per class, val included", "min": 1})
    val_per_class: int | None = field(
        default=None, metadata={"help": "of --per-class, held out for validation", "min": 0}
    )
    seed: int | None = field(
        default=None,
        metadata={
            "help": "seed of the data selection (--per-class draws, held-out parts; none given: the training "
            "--seed when training, else 0)",
            "min": 0,
            "max": 2**32 - 1,
            "flags": ("--data-seed", "--seed"),
        },
    )
    hub_id: str | None = field(
        default=None, metadata={"help": f"Hub dataset (hub), or ImageNet for vipriors ({DEFAULT_IMAGENET_HUB_ID})"}
    )
    streaming: bool = field(default=False, metadata={"help": "stream the source instead of downloading it"})
    image_column: str = field(default="image", metadata={"help": "image column of the source"})
    label_column: str = field(default="label", metadata={"help": "label column of the source"})
    cache_dir: str | None = field(
        default=None, metadata={"help": "datasets and decoded-image cache folder (none: HF_DATASETS_CACHE)"}
    )
    data_pipeline: str = field(
        default="auto",
        metadata={
            "help": "device: decode once into a cache, augment whole batches on the model's device; pil: decode "
            "and augment per image in the workers; auto: device on a GPU, pil on a CPU (the faster on each)",
            "choices": DATA_PIPELINES,
        },
    )
    decode_max_side: int = field(
        default=512,
        metadata={"help": "longer side (px) of images in the decoded cache (device pipeline)", "min": 8, "max": 8192},
    )

    def __post_init__(self) -> None:
        check_settings(self)

    def refuse_streamed_splits(self, command: str) -> None:
        """Refuse, before anything is loaded or written, a source whose splits would be streamed: the
        trainers and evaluations read splits by index (a new order every epoch, exact resume, the
        rows of predictions), which a stream cannot give. The VIPriors subset streams ImageNet only
        to select its images, then keeps them: it is not refused.

        Raises:
            VipriorsError: ``--streaming`` with a source other than ``vipriors``.
        """
        if self.streaming and self.dataset != "vipriors":
            raise VipriorsError(
                f"--streaming: {command} reads its splits by index (a new order every epoch, exact resume), which "
                "a streamed source cannot give; drop --streaming (the source is then downloaded and cached once)."
            )
