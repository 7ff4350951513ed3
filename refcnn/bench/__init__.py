"""``python -m refcnn bench``: refcnn against PyTorch, measured side by side in one run.

Everything is float32, forward + backward, on this machine, so every figure is a ratio of
two timings taken in turn rather than a number to compare across machines. The pieces, one
concern per module:

- :mod:`.cases`: the conv and pool cases, their flop counts, how each side runs them;
- :mod:`.timing`: interleaved repeats, medians and spreads, memory peaks;
- :mod:`.machine`: NumPy's BLAS (library, core type, threads, via threadpoolctl), the
  matmul peak, the thread limits each table runs under;
- :mod:`.training`: whole training steps, a LeNet-5 epoch, the notebook experiment;
- :mod:`.denormals`: subnormal numbers on real MNIST and what they cost;
- :mod:`.report`: results, the targets and the tables and JSON;
- :mod:`.command`: the command line.

Importing this package does not import torch; running the benchmark needs it (the
``bench`` extra: torch, mygrad, threadpoolctl).
"""

from .cases import CONV_CASES, POOL_CASES, ConvCase, PoolCase, conv2d_flops, linear_flops, model_forward_flops
from .command import BenchError, main, run
from .denormals import count_subnormal
from .machine import blas_facts, blas_threads, matmul_peak_gflops, override_warning, overrides
from .report import TARGETS, Check, Result, format_table, report, summarize
from .timing import Options, geomean, interleaved, median_ms, peak_memory, spread

__all__ = [
    "TARGETS", "CONV_CASES", "POOL_CASES", "ConvCase", "PoolCase", "Result", "Check", "BenchError", "Options",
    "conv2d_flops", "linear_flops", "model_forward_flops", "geomean", "median_ms", "spread", "interleaved",
    "peak_memory", "blas_threads", "blas_facts", "overrides", "override_warning", "matmul_peak_gflops",
    "count_subnormal", "summarize", "report", "format_table", "run", "main",
]  # fmt: skip
