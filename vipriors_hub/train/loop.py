"""The one training loop of both phases, on ``accelerate``.

A phase (teacher, student) is a :class:`~vipriors_hub.train.phase.TrainingPhase`: its trained
module, its transform and its ``training_step``, plus the state it keeps beside the optimizer and
what ``final/`` holds. The loop does the rest, identically for both: start or resume the run,
stream the data, accumulate, step, schedule, guard against divergence, log, checkpoint, stop on a
preemption signal, finish. Every run writes (this is the one description of the layout)::

    OUTPUT/config.yaml      the resolved configuration (``--config`` takes it back)
    OUTPUT/metrics.jsonl    one JSON object per logged step, evaluation and event
    OUTPUT/result.json      what the finished run did (``FitResult``; what ``fit`` returns)
    OUTPUT/history.jsonl    the settings each ``--resume`` changed
    OUTPUT/checkpoints/     ``step-XXXXXXXX`` folders written by ``accelerator.save_state``
    OUTPUT/final/           a Hub-ready folder (model.safetensors + timm config.json + card)
    OUTPUT/best/            the student's classifier with the best validation top-1
    OUTPUT/logs/            the tracker's files (tensorboard, ...)
    OUTPUT/.run.lock        held by the running trainer: one writer per run folder
"""

import contextlib
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn
from tqdm.auto import tqdm

from ..data import DataConfig, DataSplits
from ..errors import RunPreempted, VipriorsError
from ..outputs import write_failure
from .checkpoints import CheckpointManager, is_write_error
from .consensus import raise_on_any
from .guard import NonFiniteGuard
from .metrics import MetricsWriter, read_curves
from .phase import StepOutput, StepPosition, TrainingPhase
from .preemption import StopSignals
from .prepare import prepare_phase
from .result import FitResult, StepFlops
from .run import learning_rate, start_record, tracker_config
from .run_folder import hold_run_folder, open_run
from .run_setup import set_up_run
from .settings import TrainSettings

__all__ = ["fit", "train_micro_step", "write_model_folder_of"]


def train_micro_step(
    accelerator: Accelerator,
    phase: TrainingPhase,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Any,
    position: StepPosition,
) -> StepOutput:
    """One micro-batch of training: forward, backward and, when ``accelerator`` ends an accumulation
    cycle, the optimizer step and the phase's post-step hook. The benchmarks time this function."""
    with accelerator.accumulate(model):
        output = phase.training_step(batch, position)
        accelerator.backward(output.loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    phase.after_micro_step()
    if accelerator.sync_gradients:
        phase.after_optimizer_step()
    return output


def fit(
    settings: TrainSettings,
    data_config: DataConfig,
    build_phase: Callable[[Accelerator, DataSplits, TrainSettings], TrainingPhase],
    splits: tuple[str, ...] = ("train",),
) -> FitResult:
    """Train the phase that ``build_phase`` makes for the accelerator, the data and the settings as the
    run resolved them (seeds, data pipeline; ``splits``: those the phase reads); return what the run
    did (also written to ``OUTPUT/result.json``; its ``final`` is ``OUTPUT/final``).

    The main process holds the run folder's lock throughout. SIGTERM / SIGUSR1 stop every process
    after the same optimizer step, with a checkpoint of that step.

    Raises:
        VipriorsError: bad configuration or data, a different run in the output folder (or one still
            running there), nothing to resume, divergence (the last good checkpoint is kept), or a
            write the disk refused (the last complete checkpoint is kept).
        RunPreempted: a stop signal arrived; the checkpoint it names continues with ``--resume``.
    """
    setup = set_up_run(settings, data_config, build_phase, splits)
    accelerator, settings, data_config = setup.accelerator, setup.settings, setup.data_config
    phase, loader, resume_from = setup.phase, setup.loader, setup.resume_from
    steps_per_epoch, total_steps = setup.steps_per_epoch, setup.total_steps
    output = Path(settings.output)
    accumulation = settings.gradient_accumulation_steps
    with contextlib.ExitStack() as run_scope:
        run_scope.callback(loader.close)
        run_scope.enter_context(hold_run_folder(accelerator, output, settings))
        sections = open_run(accelerator, output, {"data": data_config, "train": settings}, settings)
        model, optimizer, scheduler = prepare_phase(
            phase, settings, accelerator, steps_per_epoch, total_steps, output, sections
        )
        checkpoints = CheckpointManager(accelerator, output / "checkpoints")
        metrics = MetricsWriter(output / "metrics.jsonl", accelerator)
        guard = NonFiniteGuard(accelerator, model)
        step = micro_step = 0
        seconds_before, validation = 0.0, {}
        # The decoded cache counted each unreadable training image once, when it was built.
        skipped_before = getattr(loader.stream.source, "skipped", 0) if accelerator.is_main_process else 0
        flops = StepFlops(accelerator.num_processes)
        if settings.resume:
            checkpoint = resume_from or checkpoints.latest()
            if checkpoint is None:
                raise VipriorsError(f"--resume: no complete checkpoint in {output / 'checkpoints'}.")
            tensors, progress = checkpoints.load(checkpoint)
            phase.load_state(tensors, progress)
            step = progress["step"]
            micro_step = progress.get("micro_step", step * accumulation)
            loader.load_state_dict(progress["loader"])
            seconds_before = progress.get("train_seconds")  # None: an older version's checkpoint
            validation = progress.get("validation", progress.get("scores", {}))
            skipped_before = progress.get("skipped_images", 0)
            flops = StepFlops.resumed(accelerator.num_processes, progress)
            for abandoned in checkpoints.discard_after(step):
                accelerator.print(f"Deleted {abandoned}: the run continues from the older {checkpoint.name}.")
            accelerator.print(f"Resumed from {checkpoint} at step {step}.")
        metrics.write(
            start_record(accelerator, settings, learning_rate(settings, accelerator.num_processes), step, total_steps)
        )
        scheduler.step_update(step)
        accelerator.init_trackers(phase.name, config=tracker_config(sections))
        stop = run_scope.enter_context(StopSignals(accelerator))
        started = time.perf_counter()

        def seconds_so_far() -> float | None:
            return None if seconds_before is None else seconds_before + time.perf_counter() - started

        def skipped_images() -> int:
            """Unreadable images every process skipped so far (an all-reduce: at checkpoints and the end only)."""
            skipped = torch.tensor(loader.skipped_images, device=accelerator.device)
            return skipped_before + int(accelerator.reduce(skipped, reduction="sum"))

        def save_checkpoint() -> Path:
            guard.check(checkpoints, step)
            tensors, progress = phase.state()
            state = {**progress, "step": step, "micro_step": micro_step, "loader": loader.state_dict()}
            state.update({"train_seconds": seconds_so_far(), "validation": validation, **flops.state()})
            state["skipped_images"] = skipped_images()
            return checkpoints.save(step, tensors, state)

        with tqdm(
            total=total_steps, initial=step, disable=not accelerator.is_local_main_process, desc=phase.name
        ) as progress_bar:
            phase.train()
            window_start, window_images = time.perf_counter(), 0
            while step < total_steps:
                for batch in loader:
                    position = StepPosition(micro_step, step // steps_per_epoch)
                    with flops.micro_step(phase.step_kind(position)):
                        output_step = train_micro_step(accelerator, phase, model, optimizer, batch, position)
                    micro_step += 1
                    window_images += settings.batch_size * accelerator.num_processes
                    if not accelerator.sync_gradients:
                        continue
                    step += 1
                    scheduler.step_update(step)
                    guard.observe(output_step.loss, step)
                    progress_bar.update(1)
                    if step % settings.log_every == 0 or step == total_steps:
                        guard.check(checkpoints, step)
                        seconds = time.perf_counter() - window_start
                        record = _step_record(accelerator, output_step, step, steps_per_epoch, optimizer)
                        metrics.write({**record, "images_per_second": window_images / seconds})
                        accelerator.log({k: v for k, v in record.items() if k != "step"}, step=step)
                        progress_bar.set_postfix(loss=f"{record['loss']:.3f}")
                        window_start, window_images = time.perf_counter(), 0
                    end_of_epoch = step % steps_per_epoch == 0 or step == total_steps
                    if end_of_epoch:
                        guard.check(checkpoints, step)
                        scores = phase.end_of_epoch(step)
                        if scores:
                            validation = {name.removeprefix("val_"): value for name, value in scores.items()}
                            metrics.write({"step": step, "epoch": step / steps_per_epoch, **scores})
                            accelerator.log(scores, step=step)
                    saved = save_checkpoint() if end_of_epoch or step % settings.checkpoint_every == 0 else None
                    stop_signal = stop.agreed()
                    if stop_signal and step < total_steps:
                        saved = saved or save_checkpoint()
                        metrics.write({"event": "preempted", "step": step, "signal": signal.Signals(stop_signal).name})
                        stop.close()
                        accelerator.end_training()
                        raise RunPreempted(stop_signal, step, str(saved), accelerator.is_main_process)
                    if step >= total_steps:
                        break

        final = output / "final"
        write_model_folder_of(phase, final, accelerator, step / steps_per_epoch)
        result = FitResult(
            phase=phase.name,
            final=final,
            steps=step,
            steps_per_epoch=steps_per_epoch,
            epochs=step / steps_per_epoch,
            images_seen=micro_step * settings.batch_size * accelerator.num_processes,
            effective_batch_size=settings.batch_size * accelerator.num_processes * accumulation,
            processes=accelerator.num_processes,
            gradient_accumulation_steps=accumulation,
            mixed_precision=accelerator.mixed_precision,
            torch_compile=bool(settings.torch_compile),
            channels_last=bool(settings.channels_last),
            train_seconds=seconds_so_far(),
            train_flops=flops.total,
            flops_per_micro_step=flops.per_micro_step,
            validation=validation,
            curves=read_curves(output / "metrics.jsonl") if accelerator.is_main_process else {},
            skipped_images=skipped_images(),
        )
        _write_result(result, output, accelerator)
        stop.close()
        accelerator.end_training()
        return result


def _step_record(
    accelerator: Accelerator, output: StepOutput, step: int, steps_per_epoch: int, optimizer: torch.optim.Optimizer
) -> dict[str, float]:
    """The logged values of a step: its loss and metrics averaged over processes (a host sync), the lr."""
    return {
        "step": step,
        "epoch": step / steps_per_epoch,
        "loss": accelerator.reduce(output.loss.detach().float(), reduction="mean").item(),
        **{
            name: accelerator.reduce(value.detach().float(), reduction="mean").item()
            for name, value in output.metrics.items()
        },
        "lr": optimizer.param_groups[0]["lr"],
    }


def _write_result(result: FitResult, output: Path, accelerator: Accelerator) -> None:
    """``OUTPUT/result.json`` on the main process, agreed by every process."""
    failure = None
    if accelerator.is_main_process:
        try:
            result.write(output)
        except OSError as error:
            failure = write_failure("result.json", output, error, "Free space, then --resume writes it.")
            failure.__cause__ = error
    raise_on_any(accelerator, failure)


def write_model_folder_of(phase: TrainingPhase, folder: Path, accelerator: Accelerator, epochs: float) -> None:
    """``phase.write_final(folder, epochs)`` on the main process; a write the disk refused stops every
    process with one line (call it on every process).

    Raises:
        VipriorsError: the disk refused a write (the partial folder is removed, an older ``folder``
            is kept).
    """
    failure = None
    if accelerator.is_main_process:
        try:
            phase.write_final(folder, epochs)
        except Exception as error:
            if not is_write_error(error):
                raise
            failure = write_failure(
                f"the model folder {folder.name}/",
                folder.parent,
                error,
                "Its partial copy was removed; free space, then --resume writes it from the last checkpoint.",
            )
            failure.__cause__ = error
    raise_on_any(accelerator, failure)
