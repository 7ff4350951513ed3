"""``python -m refcnn parity``: train a refcnn model and the same PyTorch model side by side.

Both start from identical weights (``refcnn.interop.to_torch``), see the same batches in the
same order (one seeded shuffle, the very same arrays) and take the same optimizer's steps
(refcnn's SGD/Adam and torch.optim's, single-tensor algorithm). Dropout masks are the same
too: the torch model's Dropout/Dropout2d layers are replaced by ones that draw their mask
as refcnn's dropout kernel does (``generator.random(mask shape) >= p``, then ``mask / (1 -
p)``) from a copy of refcnn's generator taken before each step, so both runs drop the same
units. BatchNorm trains in train mode (batch statistics, running averages updated).

Written per run: the per-step losses of both, their worst relative difference, the worst
difference of the final parameters and buffers, both accuracies on the test set (eval
mode), and whether every test prediction is identical.

Requirements checked (``checks`` and ``passed`` in the record; the exit status is 1 if one
of them fails):

* float64: every step's loss agrees within relative 1e-10, the final weights and buffers
  within 1e-9 (absolute), and the predictions on the whole test set are identical.
* float32: the test accuracies differ by at most 0.2 points, compared as counts of images
  (on 1,000 test images: at most 2 more or fewer correct predictions). The step-by-step drift is
  reported against a per-step budget (see :func:`budget`) with the first step beyond it,
  not checked: two float32 trainings that round differently drift apart once the training
  dynamics amplify the rounding differences, PyTorch's against itself too (BatchNorm models
  leave the budget within a few steps). So a float32 run also trains PyTorch in float64
  from the same start (``float64_reference``; ``--no-reference`` skips it) and reports how
  far each float32 run drifts from that trajectory, which says which of the two leaves the
  budget first.

  Drifted runs are two trainings of the same recipe, and their test accuracies agree as
  closely as the recipe's end point is stable: after one epoch at a constant learning rate
  a BatchNorm model's accuracy still swings by a point from step to step, PyTorch float32
  against PyTorch float64 too. Annealed to zero (``--scheduler cosine``) over a few epochs
  they agree within the 0.2 points; the README gives the measured figures.

Schedule: ``--scheduler cosine`` anneals both sides' learning rate with CosineAnnealingLR
(T_max = the number of steps), stepped after every optimizer step; refcnn's scheduler
computes PyTorch's recurrence, so float64 parity holds with it too.

Data: real MNIST from ``../shared/data/mnist`` beside the refcnn source tree (6,309 training
and 10,000 test images) when present, else the sample bundled with refcnn; ``--data`` overrides.
"""

from __future__ import annotations

from .cli import main
from .config import (
    DEFAULT_DATA,
    EVAL_BATCH,
    FLOAT32_ACCURACY_POINTS,
    FLOAT64_ABS_WEIGHT,
    FLOAT64_REL_LOSS,
    MODEL_NAMES,
    OPTIMIZER_NAMES,
    RunConfig,
    data_dir,
)
from .rounding import BUDGET_K, BUDGET_LAMBDA, budget, forward_reductions
from .runner import allowed_images, run
from .twin import versions

__all__ = [
    "BUDGET_K",
    "BUDGET_LAMBDA",
    "DEFAULT_DATA",
    "EVAL_BATCH",
    "FLOAT32_ACCURACY_POINTS",
    "FLOAT64_ABS_WEIGHT",
    "FLOAT64_REL_LOSS",
    "MODEL_NAMES",
    "OPTIMIZER_NAMES",
    "RunConfig",
    "allowed_images",
    "budget",
    "data_dir",
    "forward_reductions",
    "main",
    "run",
    "versions",
]
