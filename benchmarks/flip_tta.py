"""What horizontal-flip averaging at test time would add: accuracy of runs with and without it.

    python benchmarks/flip_tta.py RUN [RUN ...] [--index runs/index]

For each experiment folder (best.pt), prints val and test accuracy of the plain logits, of the
mean of the logits of the face and its mirror image, and of the mean of their softmax
probabilities. A measurement to decide with (teachers' soft labels, an app option), not a
feature: nothing in training or the app uses flip averaging.
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--index", default="runs/index")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from training.data import FERDataset, checkpoint_crop_spec
    from training.evaluate import predict_logits
    from training.index import load_index
    from training.models import model_from_checkpoint

    class Mirrored(torch.nn.Module):
        def __init__(self, model: torch.nn.Module):
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(torch.flip(x, dims=[-1]))

    torch.set_num_threads(args.threads)
    index = load_index(args.index)
    print(f"{'run':<48} {'split':<5} {'plain':>7} {'logits':>7} {'probs':>7}")
    for run in args.runs:
        model, ck = model_from_checkpoint(f"{run}/best.pt")
        spec = checkpoint_crop_spec(ck)
        for split in ("val", "test"):
            ds = FERDataset(index, spec, split=split)
            z, pos = predict_logits(model, ds, channels_last=True)
            zf, _ = predict_logits(Mirrored(model), ds, channels_last=True)
            y = index.labels[pos]
            p = torch.softmax(torch.from_numpy(z), 1) + torch.softmax(torch.from_numpy(zf), 1)
            print(f"{run:<48} {split:<5} {np.mean(z.argmax(1) == y):>7.4f} {np.mean((z + zf).argmax(1) == y):>7.4f} "
                  f"{np.mean(p.numpy().argmax(1) == y):>7.4f}", flush=True)


if __name__ == "__main__":
    main()
