"""Training curves, first-layer filters, confusion matrix and misclassified digits (PNG).

Either train a model here for a few epochs (``--epochs``, SGD with momentum, as
``python -m refcnn train``) and plot it, or plot a saved checkpoint (``--checkpoint``;
the training curves need a run, so only the other three figures are written then):

    python examples/plots.py [--model lenet5] [--epochs 5] [--data DIR] [--out plots/]
    python examples/plots.py --model vgg --checkpoint runs/vgg_best.safetensors --out plots/vgg

matplotlib is needed (``pip install 'refcnn[plot]'``). The test set of ``--data``
(default: ../shared/data/mnist if present, else the bundled sample) is used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import refcnn
from refcnn import io, models, optim
from refcnn.data import load_mnist
from refcnn.parity import data_dir
from refcnn.plots import write_training_plots
from refcnn.train import EpochStats, fit


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=sorted(models.MODELS), default="lenet5")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--checkpoint", type=Path, default=None, help="plot this safetensors checkpoint instead of training")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--out", type=Path, default=Path("plots"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    generator = refcnn.manual_seed(args.seed)
    root = data_dir(args.data)
    x_test, y_test = load_mnist(root, train=False)
    model = models.build(args.model)
    history: list[EpochStats] = []
    if args.checkpoint is not None:
        model.load_state_dict(io.load(args.checkpoint))
        print(f"{args.model} from {args.checkpoint}")
    else:
        x_train, y_train = load_mnist(root, train=True)
        opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
        history = fit(
            model, opt, (x_train, y_train), (x_test, y_test), epochs=args.epochs, batch_size=args.batch_size,
            generator=generator, progress=sys.stderr.isatty(),
            on_epoch=lambda s: print(f"epoch {s.epoch}: test accuracy {s.test_accuracy:.4f}", flush=True),
        )  # fmt: skip
    for path in write_training_plots(args.out, model, history, (x_test, y_test)):
        print(f"plot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
