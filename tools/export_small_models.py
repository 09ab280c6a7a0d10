#!/usr/bin/env python3
"""Export small PyTorch models the way users ship them, with onnxruntime reference data.

Run by hand (CI never runs Python):

    python3 tools/export_small_models.py [--out tests/data/small_models]

Unlike tools/export_real_models.py (big torchvision models, files not committed), these
are small enough (< 1 MB each) to commit, so `cargo test` runs them on every clone:

  * gpt_tiny  — token embedding, learned positions, 2 pre-norm TransformerEncoderLayers
                with a causal mask built from torch.triu at run time (Trilu, Shape, Slice),
                GELU, a vocabulary head; the sequence length is a dynamic axis of the input
                (bound from the test data, T = 16).
  * crnn      — OCR-style CNN + bidirectional LSTM + log_softmax over 37 classes.
  * kws       — keyword spotting: Conv1d stride 2, depthwise Conv1d, pointwise Conv1d,
                GRU, softmax.
  * vit_tiny  — patch-embedding Conv (stride = kernel), class token, 2 encoder layers,
                LayerNorm, linear head.

Weights are random (torch.manual_seed(0) before each model); inputs are seeded; expected
outputs come from onnxruntime with graph optimizations disabled. Each model is exported
twice: NAME/ by the legacy TorchScript exporter (opset 17, `dynamo=False`) and dynamo_NAME/
by the torch.export-based one (`dynamo=True`, its default opset; needs onnxscript), since
the two emit different graphs for the same module.
"""

import argparse
import os

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn
from onnx import numpy_helper


class Causal(nn.Module):
    def __init__(s, d=64, h=4, layers=2, vocab=100):
        super().__init__()
        s.emb = nn.Embedding(vocab, d)
        s.pos = nn.Parameter(torch.randn(1, 32, d) * 0.1)
        s.blocks = nn.ModuleList(
            [
                nn.TransformerEncoderLayer(
                    d, h, 128, batch_first=True, activation="gelu", norm_first=True
                )
                for _ in range(layers)
            ]
        )
        s.head = nn.Linear(d, vocab)

    def forward(s, ids):
        t = ids.shape[1]
        x = s.emb(ids) + s.pos[:, :t]
        mask = torch.triu(torch.full((t, t), float("-inf")), diagonal=1)
        for b in s.blocks:
            x = b(x, src_mask=mask)
        return s.head(x)


class CRNN(nn.Module):
    def __init__(s):
        super().__init__()
        s.cnn = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d((2, 1)),
        )
        s.rnn = nn.LSTM(32 * 8, 64, bidirectional=True, batch_first=True)
        s.fc = nn.Linear(128, 37)

    def forward(s, x):
        f = s.cnn(x)
        b, c, h, w = f.shape
        f = f.permute(0, 3, 1, 2).reshape(b, w, c * h)
        o, _ = s.rnn(f)
        return s.fc(o).log_softmax(-1)


class KWS(nn.Module):
    def __init__(s):
        super().__init__()
        s.c1 = nn.Conv1d(40, 64, 5, stride=2)
        s.c2 = nn.Conv1d(64, 64, 3, groups=64, padding=1)
        s.c3 = nn.Conv1d(64, 96, 1)
        s.gru = nn.GRU(96, 64, batch_first=True)
        s.fc = nn.Linear(64, 12)

    def forward(s, x):
        x = torch.relu(s.c1(x))
        x = torch.relu(s.c3(s.c2(x)))
        o, _ = s.gru(x.transpose(1, 2))
        return s.fc(o[:, -1]).softmax(-1)


class ViT(nn.Module):
    def __init__(s, d=64):
        super().__init__()
        s.patch = nn.Conv2d(3, d, 8, stride=8)
        s.cls = nn.Parameter(torch.zeros(1, 1, d))
        s.pos = nn.Parameter(torch.randn(1, 17, d) * 0.02)
        s.enc = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, 4, 128, batch_first=True, activation="gelu"), 2
        )
        s.norm = nn.LayerNorm(d)
        s.head = nn.Linear(d, 10)

    def forward(s, x):
        p = s.patch(x).flatten(2).transpose(1, 2)
        p = torch.cat([s.cls.expand(x.shape[0], -1, -1), p], 1) + s.pos
        return s.head(s.norm(s.enc(p))[:, 0])


def models():
    g = torch.Generator().manual_seed(1)
    # T is declared dynamic (the graph input says so and smelt binds it from the data), but
    # the legacy exporter bakes T = 16 into MultiheadAttention's Reshapes: one test length.
    yield "gpt_tiny", Causal, [torch.randint(0, 100, (1, 16), generator=g)], {"x": {1: "T"}}
    yield "crnn", CRNN, [torch.randn(1, 1, 32, 64, generator=g)], None
    yield "kws", KWS, [torch.randn(1, 40, 101, generator=g)], None
    yield "vit_tiny", ViT, [torch.randn(1, 3, 32, 32, generator=g)], None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/small_models")
    args = ap.parse_args()
    for (name, cls, inputs, dynamic), dynamo in [(m, dy) for m in models() for dy in (False, True)]:
        torch.manual_seed(0)
        model = cls().eval()
        if dynamo:
            name = f"dynamo_{name}"
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "model.onnx")
        if dynamo:
            torch.onnx.export(model, (inputs[0],), path, input_names=["x"], output_names=["y"],
                              dynamo=True)
        else:
            torch.onnx.export(model, inputs[0], path, opset_version=17, input_names=["x"],
                              output_names=["y"], dynamic_axes=dynamic, dynamo=False)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(path, so)
        for k, x in enumerate(inputs):
            sd = os.path.join(d, f"test_data_set_{k}")
            os.makedirs(sd, exist_ok=True)
            with open(os.path.join(sd, "input_0.pb"), "wb") as f:
                f.write(numpy_helper.from_array(x.numpy(), "x").SerializeToString())
            y = sess.run(None, {"x": x.numpy()})[0]
            with torch.no_grad():
                err = float(np.abs(model(x).numpy() - y).max())
            with open(os.path.join(sd, "output_0.pb"), "wb") as f:
                f.write(numpy_helper.from_array(y, "y").SerializeToString())
            print(f"{name} set {k}: input {tuple(x.shape)} -> {y.shape}, |torch - ort| {err:.2e}")


if __name__ == "__main__":
    main()
