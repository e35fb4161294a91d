"""Why d2l's small NiN stalls on Fashion-MNIST: train it (fastconv only) and count, on the test set,
how often each class is predicted and how often its logit is exactly 0.

NiN ends in ReLU -> global average pooling, so a logit is >= 0 and a class whose last ReLU is off for
every input has logit 0 forever (no gradient reaches it): it is never predicted, and wherever the
other logits are 0 as well the argmax falls to class 0.

    python3 benchmarks/diagnose_nin.py --optimizer adam --lr 3e-3 --epochs 2 --seed 0
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import fastconv
from fastconv.data import resize
from fastconv.nn import functional as F


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--size", type=int, default=68)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", default="default", choices=["default", "xavier"],
                    help="weights: PyTorch's defaults, or Xavier uniform as d2l's init_cnn")
    ap.add_argument("--cosine", action="store_true", help="cosine learning-rate schedule over --epochs")
    ap.add_argument("--data", default=None)
    args = ap.parse_args(argv)
    print(f"command: python3 benchmarks/diagnose_nin.py {' '.join(argv if argv is not None else sys.argv[1:])}")

    fastconv.set_num_threads(args.threads)
    fastconv.manual_seed(args.seed)
    model = fastconv.models.get("nin", small=True, width=args.width)
    if args.init == "xavier":
        fastconv.models.xavier_init_(model)
    params = model.parameters()
    opt = (fastconv.optim.Adam(params, args.lr) if args.optimizer == "adam"
           else fastconv.optim.SGD(params, args.lr, momentum=args.momentum))
    schedule = fastconv.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs) if args.cosine else None
    train = fastconv.data.load_idx_dataset("fashion-mnist", "train", root=args.data, normalize=True)
    test = fastconv.data.load_idx_dataset("fashion-mnist", "test", root=args.data, normalize=True)
    rng = np.random.default_rng(args.seed)

    def test_logits():
        model.eval()
        with fastconv.no_grad():
            return np.concatenate([model(fastconv.Tensor(resize(test.images[i:i + 1000], args.size))).numpy()
                                   for i in range(0, len(test.labels), 1000)])

    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(train.labels))
        for i in range(0, len(order), args.batch):
            b = order[i:i + args.batch]
            loss = F.cross_entropy(model(fastconv.Tensor(resize(train.images[b], args.size))), train.labels[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if schedule is not None:
            schedule.step()
        logits = test_logits()
        print(f"epoch {epoch + 1}: test accuracy {100 * (logits.argmax(1) == test.labels).mean():.2f}%", flush=True)
    print("predictions per class:", np.bincount(logits.argmax(1), minlength=logits.shape[1]).tolist())
    print("fraction of test images with logit exactly 0, per class:", (logits == 0).mean(0).round(2).tolist())
    return 0


if __name__ == "__main__":
    sys.exit(main())
