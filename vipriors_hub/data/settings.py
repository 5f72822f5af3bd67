"""The data settings every subcommand shares (``--dataset``, ``--data-dir``, ...), light to import:
the command line reads them before anything heavy is loaded."""

from dataclasses import dataclass, field

from ..config import check_settings
from ..errors import VipriorsError

__all__ = ["CIFAR10_POLICY", "DATASETS", "DEFAULT_FASHION_MNIST_DIR", "DEFAULT_IMAGENET_HUB_ID", "DataConfig"]

DATASETS = ("vipriors", "fashion-mnist", "imagefolder", "parquet", "hub")
DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
DEFAULT_IMAGENET_HUB_ID = "ILSVRC/imagenet-1k"
CIFAR10_POLICY = "cifar10"
"""``--aa cifar10``: torchvision's AutoAugment CIFAR-10 policy, the policy of the original code."""


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
    cache_dir: str | None = field(default=None, metadata={"help": "datasets cache folder (none: HF_DATASETS_CACHE)"})

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
