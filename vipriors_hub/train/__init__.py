"""Training: one loop on accelerate (``loop.py``) driving one phase at a time.

* ``loop.py``: ``fit``, the only training loop, and ``train_micro_step``, the step it (and the
  benchmarks) run; ``TrainingPhase``, what a phase gives the loop;
* ``run.py``: what every run shares: settings, output folder, accelerator, checkpoints, metrics, guard;
* ``teacher.py``: phase 1, the MoCo v2 + margin-loss teacher (configuration + phase);
* ``student.py``: phase 2, self-distillation with OFD (configuration + phase);
* ``moco.py`` and ``distill.py``: the method's parts (encoders, queue, shuffle-BN; frozen teacher,
  student with connectors).
"""
