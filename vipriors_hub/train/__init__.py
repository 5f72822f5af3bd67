"""Training: one loop on accelerate (``loop.py``) driving one phase at a time.

* ``loop.py``: ``fit``, the only training loop (and the one description of a run's folder), and
  ``train_micro_step``, the step it (and the benchmarks) run; ``result.py``: ``FitResult``, what a
  run did (``OUTPUT/result.json``), and the count of its training FLOPs;
* ``phase.py``: ``TrainingPhase``, what a phase gives the loop; ``prepare.py``: its optimizer,
  schedule, accelerate preparation and compilation;
* ``settings.py``: the settings every run shares; ``run.py``: the start of a run (accelerator,
  seeds, accumulation, learning rate, the plan of steps); ``run_folder.py``: the run's folder, its
  ``config.yaml`` and resume rules; ``run_lock.py``: one writer per run folder;
* ``checkpoints.py``, ``metrics.py``, ``guard.py``: atomic checkpoints, ``metrics.jsonl`` (its writer
  and its one reader), the divergence guard; ``preemption.py``: SIGTERM/SIGUSR1 stop every process
  after the same step;
* ``teacher_settings.py`` + ``teacher.py``: phase 1, the MoCo v2 + margin-loss teacher (its settings,
  light to import; its phase);
* ``student_settings.py`` + ``student.py``: phase 2, self-distillation with OFD;
* ``moco.py`` and ``distill.py``: the method's parts (encoders, queue, shuffle-BN; frozen teacher,
  student with connectors).
"""
