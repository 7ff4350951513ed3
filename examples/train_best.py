"""refcnn's best MNIST recipe: VGGNet (BatchNorm + Dropout), augmentation, Adam + 1cycle.

Trained on the 6,309 real training images in ``../shared/data/mnist`` (or ``--data``),
tested on all 10,000 test images after every epoch. The recipe:

* model: ``refcnn.models.VGGNet`` (conv32-conv32-pool-conv64-conv64-pool, each conv
  followed by BatchNorm2d + ReLU; Dropout(0.25) -> Linear(3136, 128) -> BatchNorm1d ->
  ReLU -> Dropout(0.5) -> Linear(128, 10)), float32, PyTorch's default init;
* augmentation (training images only, a fresh draw every epoch): a random rotation in
  [-10, 10] degrees (bilinear), then a random shift of up to 2 pixels each way, applied to
  the uint8 images before normalisation (``refcnn.data.transforms``);
* Adam (betas 0.9/0.999) under ``OneCycleLR(max_lr=3e-3)`` stepped every batch (lr up from
  1.2e-4 over the first 30%, then cosine down to 1.2e-8; beta1 cycling 0.95 -> 0.85 -> 0.95);
* batches of 64, 15 epochs, seed 0.

    python examples/train_best.py [--epochs 15] [--data DIR] [--plot DIR] [--checkpoint FILE]

It prints one line per epoch and saves a safetensors checkpoint that PyTorch loads as is.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import refcnn
from refcnn import io, models, nn, optim
from refcnn.data import MNIST, MNIST_MEAN, MNIST_STD, DataLoader, load_mnist, transforms
from refcnn.parity import data_dir
from refcnn.train import EpochStats, evaluate, train_step


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--max-lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rotation", type=float, default=10.0, help="max rotation in degrees (0: none)")
    p.add_argument("--shift", type=int, default=2, help="max shift in pixels (0: none)")
    p.add_argument("--data", type=Path, default=None, help="MNIST directory (default ../shared/data/mnist)")
    p.add_argument("--checkpoint", type=Path, default=Path("runs/vgg_best.safetensors"))
    p.add_argument("--plot", type=Path, default=None, help="write training plots (PNG) to this directory")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    generator = refcnn.manual_seed(args.seed)
    root = data_dir(args.data)
    augment: list[transforms.Transform] = []
    if args.rotation > 0:
        augment.append(transforms.RandomRotation(args.rotation))
    if args.shift > 0:
        augment.append(transforms.RandomShift(args.shift))
    pipeline = transforms.Compose([*augment, transforms.ToFloat(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    train_set = MNIST(root, train=True, transform=pipeline)
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, generator=generator)
    x_test, y_test = load_mnist(root, train=False)

    model = models.VGGNet()
    opt = optim.Adam(model.parameters(), lr=args.max_lr)
    scheduler = optim.lr_scheduler.OneCycleLR(opt, max_lr=args.max_lr, epochs=args.epochs, steps_per_epoch=len(loader))
    criterion = nn.CrossEntropyLoss()
    print(
        f"VGGNet on {len(train_set)} training images from {root} ({', '.join(map(repr, augment)) or 'no augmentation'}), "
        f"tested on {len(y_test)}; Adam + OneCycleLR(max_lr={args.max_lr:g}), batch {args.batch_size}, "
        f"{args.epochs} epochs",
        flush=True,
    )

    history = []
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        for xb, yb in loader:
            loss, right = train_step(model, criterion, opt, xb, yb)
            scheduler.step()
            loss_sum += loss * len(yb)
            correct += right
            seen += len(yb)
        seconds = time.perf_counter() - t0
        test_loss, test_acc, _ = evaluate(model, x_test, y_test, batch_size=250)  # smaller buffers: faster
        history.append(EpochStats(epoch, loss_sum / seen, correct / seen, test_loss, test_acc, seconds))
        print(
            f"epoch {epoch:>3}/{args.epochs}  train loss {loss_sum / seen:.4f}  acc {correct / seen:.4f}  "
            f"test loss {test_loss:.4f}  test acc {test_acc:.4f}  ({seconds:.0f} s train, "
            f"{time.perf_counter() - start:.0f} s total)",
            flush=True,
        )
    total = time.perf_counter() - start
    args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
    io.save(model.state_dict(), args.checkpoint)
    final = history[-1]
    print(
        f"test accuracy {final.test_accuracy:.4f} ({100 * final.test_accuracy:.2f}%) on {len(y_test)} images after "
        f"{args.epochs} epochs, {total / 60:.1f} min; checkpoint: {args.checkpoint}"
    )
    if args.plot is not None:
        from refcnn.plots import write_training_plots

        for path in write_training_plots(args.plot, model, history, (x_test, y_test)):
            print(f"plot: {path}")
    return 0 if np.isfinite(final.test_loss) else 1


if __name__ == "__main__":
    sys.exit(main())
