"""What a run sets up before its first step, the same for training and for its dry run: the
accelerator and seeds, the data (decoded into the cache for the device pipeline), the phase, the
loader and the plan of steps. Nothing is written to the run folder here."""

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import yaml
from accelerate import Accelerator

from ..data import DataConfig, DataSplits, ResumableLoader, load_data
from ..data.pipeline import decode_splits, make_stream
from ..data.settings import pipeline_for
from ..errors import VipriorsError
from .consensus import raise_on_any
from .phase import TrainingPhase
from .run import gradient_accumulation, plan_steps, resolve_seeds, start_run
from .settings import TrainSettings

__all__ = ["RunSetup", "load_training_data", "set_up_run"]


class RunSetup(NamedTuple):
    """A run ready for its first step (see :func:`set_up_run`)."""

    accelerator: Accelerator
    settings: TrainSettings
    data_config: DataConfig
    resume_from: Path | None
    data: DataSplits
    pipeline: str
    phase: TrainingPhase
    loader: ResumableLoader
    steps_per_epoch: int
    total_steps: int


def load_training_data(
    accelerator: Accelerator, data_config: DataConfig, pipeline: str, workers: int, splits: tuple[str, ...]
) -> DataSplits:
    """The run's data: selected by the main process first (the others then find its ``datasets``
    cache) and, for the ``device`` pipeline, its ``splits`` decoded into the cache by each node's first
    process (with ``workers`` processes) while the node's others wait, then opened by them. A split of
    ``splits`` that the source has but that holds no image is refused (every process sees the same).

    Raises:
        VipriorsError: on every process, when the data could not be loaded or decoded on any.
    """
    data, failure = None, None
    if accelerator.is_main_process:
        try:
            data = load_data(data_config)
        except VipriorsError as error:
            failure = error
    raise_on_any(accelerator, failure)
    data = data or load_data(data_config)
    for name in splits:
        if name in data.splits and len(data.splits[name]) == 0:
            raise VipriorsError(
                f"The {name} split holds no image: raise --val-per-class (by default --per-class // 5)."
                if name == "val"
                else f"The {name} split holds no image: check the data (--data-dir, --per-class)."
            )
    if pipeline != "device":
        return data
    decoded, failure = None, None
    if accelerator.is_local_main_process:
        try:
            decoded = decode_splits(data, splits, data_config, workers)
        except VipriorsError as error:
            failure = error
        except Exception as error:  # noqa: BLE001 - every process must hear of it, or the others wait forever
            failure = VipriorsError(f"Decoding the images into the cache failed: {type(error).__name__}: {error}")
            failure.__cause__ = error
    raise_on_any(accelerator, failure)
    return decoded or decode_splits(data, splits, data_config, workers, build=False, checksum=False)


def run_pipeline(settings: TrainSettings, data_config: DataConfig, device_type: str) -> str:
    """The data pipeline of the run: the one a resumed run had (``config.yaml``; ``pil`` for a run of a
    version before there were two) when ``--data-pipeline auto``, else what the choice resolves to."""
    config_file = Path(settings.output) / "config.yaml"
    if settings.resume and data_config.data_pipeline == "auto" and config_file.is_file():
        previous = (yaml.safe_load(config_file.read_text()) or {}).get("data", {})
        return previous.get("data_pipeline", "pil") if isinstance(previous, dict) else "pil"
    return pipeline_for(data_config.data_pipeline, device_type)


def set_up_run(
    settings: TrainSettings,
    data_config: DataConfig,
    build_phase: Callable[[Accelerator, DataSplits, TrainSettings], TrainingPhase],
    splits: tuple[str, ...] = ("train",),
) -> RunSetup:
    """Resolve the seeds and the data pipeline (recorded in the returned data settings as ``device`` or
    ``pil``), start the accelerator (checking the output folder), load the data (the
    ``splits`` the phase reads decoded, for the device pipeline), build the phase and its loader
    (workers that live across epochs, batches sent to the device one ahead) and plan the steps.

    Raises:
        VipriorsError: bad configuration or data, a refused output folder.
    """
    data_config.refuse_streamed_splits("training")
    settings, data_config = resolve_seeds(settings, data_config)
    accelerator, settings, resume_from = start_run(settings, settings.seed)
    pipeline = run_pipeline(settings, data_config, accelerator.device.type)
    data_config = dataclasses.replace(data_config, data_pipeline=pipeline)
    data = load_training_data(accelerator, data_config, pipeline, settings.num_workers, splits)
    phase = build_phase(accelerator, data, settings)
    on_gpu = accelerator.device.type == "cuda"
    stream = make_stream(
        data.splits["train"],
        phase.views,
        shuffle=True,
        seed=settings.seed,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
        batch_size=settings.batch_size,
    )
    loader = ResumableLoader(
        stream,
        num_workers=settings.num_workers,
        drop_last=True,
        pin_memory=on_gpu,
        persistent_workers=True,
        device=accelerator.device,
    )
    accumulation = gradient_accumulation(settings, accelerator.num_processes, len(loader))
    accelerator.gradient_accumulation_steps = accumulation
    settings = dataclasses.replace(
        settings,
        gradient_accumulation_steps=accumulation,
        channels_last=on_gpu if settings.channels_last is None else settings.channels_last,
        torch_compile=on_gpu if settings.torch_compile is None else settings.torch_compile,
    )
    steps_per_epoch, total_steps = plan_steps(
        len(loader), len(stream), settings.batch_size, accumulation, settings.epochs, settings.max_steps
    )
    return RunSetup(
        accelerator, settings, data_config, resume_from, data, pipeline, phase, loader, steps_per_epoch, total_steps
    )
