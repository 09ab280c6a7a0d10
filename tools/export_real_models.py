#!/usr/bin/env python3
"""Export real-world ONNX models and their onnxruntime reference data.

Run by hand (CI never runs Python):

    python3 tools/export_real_models.py                 # all models
    python3 tools/export_real_models.py resnet18 lstm   # a subset
    python3 tools/export_real_models.py --out /tmp/models --data /tmp/data

For each model NAME it writes
  * <out>/NAME/model.onnx   (default out: target/real-models; not committed)
  * <data>/NAME/test_data_set_N/input_K.pb, output_K.pb
                            (default data: tests/data/real; committed)
  * <data>/NAME/info.json   (sha256 of model.onnx, opset, op histogram,
                             node counts, tool versions, error vs torch)

Weights are random (torch.manual_seed fixed per model; BatchNorm running
statistics re-estimated on random data, see calibrate_batchnorm), inputs are float32
standard normal (numpy seed fixed per model), expected outputs come from
onnxruntime with all graph optimizations disabled. The export call is the
legacy TorchScript exporter:
    torch.onnx.export(model, x, path, dynamo=False, opset_version=17)
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import shutil
import sys
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn

sys.dont_write_bytecode = True  # no tools/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_pb_io import ort_session, write_tensors  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPSET = 17


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

def _torchvision(name):
    def build():
        import torchvision

        return getattr(torchvision.models, name)(weights=None)

    return build


class LstmModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(input_size=16, hidden_size=32, num_layers=1,
                            batch_first=True)
        self.fc = nn.Linear(32, 8)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.fc(y)


def _lstm():
    return LstmModel()


def _transformer_encoder():
    layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128,
                                       dropout=0.0, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)


class IfModel(nn.Module):
    """Data-dependent branch on the sign of sum(x); scripted so it exports an If."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 8))

    def forward(self, x):
        y = torch.matmul(x, self.w)
        if bool(x.sum() > 0):
            return torch.relu(y)
        else:
            return torch.tanh(y) * 2.0


def _if_model():
    return torch.jit.script(IfModel())


# name -> (builder, input shape, torch seed, numpy seed)
MODELS = {
    "resnet18": (_torchvision("resnet18"), (1, 3, 224, 224), 1001, 2001),
    "mobilenet_v2": (_torchvision("mobilenet_v2"), (1, 3, 224, 224), 1002, 2002),
    "efficientnet_b0": (_torchvision("efficientnet_b0"), (1, 3, 224, 224), 1003, 2003),
    "squeezenet1_1": (_torchvision("squeezenet1_1"), (1, 3, 224, 224), 1004, 2004),
    "shufflenet_v2_x1_0": (_torchvision("shufflenet_v2_x1_0"), (1, 3, 224, 224), 1005, 2005),
    "transformer_encoder": (_transformer_encoder, (1, 16, 64), 1006, 2006),
    "lstm": (_lstm, (1, 10, 16), 1007, 2007),
    "if_model": (_if_model, (1, 8), 1008, 2008),
}


def calibrate_batchnorm(model, shape, batches=4, batch_size=8):
    """Set BatchNorm running statistics from random standard-normal data.

    Freshly initialised torchvision models keep running_mean=0 and
    running_var=1, and their fan_out init shrinks activations at every
    depthwise conv, so in eval mode the outputs of mobilenet_v2 and
    efficientnet_b0 collapse towards 0 (1e-9 and 1e-14). Re-estimating the
    statistics in train mode (cumulative average, no gradients) keeps the
    activations O(1), as in a trained network, and gives the folded BN real
    mean/variance values. Deterministic: uses the torch RNG seeded per model.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return False
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over all batches
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn((batch_size,) + tuple(shape[1:])))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()
    return True


def test_inputs(name, shape, np_seed):
    """List of input arrays, one per test data set."""
    rng = np.random.default_rng(np_seed)
    x = rng.standard_normal(shape).astype(np.float32)
    if name == "if_model":
        # Set 0 takes the then-branch (sum > 0), set 1 the else-branch.
        # -x is standard normal too.
        if x.sum() <= 0:
            x = -x
        assert x.sum() > 0 and (-x).sum() < 0
        return [x, -x]
    return [x]


# --------------------------------------------------------------------------
# Graph facts
# --------------------------------------------------------------------------

def _walk_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _walk_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _walk_nodes(g)


def _value_info(v):
    t = v.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in t.shape.dim]
    return {"name": v.name,
            "dtype": onnx.TensorProto.DataType.Name(t.elem_type),
            "shape": dims}


def graph_facts(model):
    g = model.graph
    init_names = {i.name for i in g.initializer}
    all_nodes = list(_walk_nodes(g))
    hist = collections.Counter(
        (n.domain + "::" if n.domain not in ("", "ai.onnx") else "") + n.op_type
        for n in all_nodes)
    return {
        "opset_import": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        "ir_version": model.ir_version,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "num_nodes": len(g.node),
        "num_nodes_including_subgraphs": len(all_nodes),
        "num_initializers": len(g.initializer),
        "num_parameters": int(sum(int(np.prod(i.dims)) for i in g.initializer)),
        "op_histogram": dict(sorted(hist.items(), key=lambda kv: (-kv[1], kv[0]))),
        "inputs": [_value_info(v) for v in g.input if v.name not in init_names],
        "outputs": [_value_info(v) for v in g.output],
    }


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions():
    import onnxruntime
    import torchvision

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
    }


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------

def _flatten(out):
    if isinstance(out, torch.Tensor):
        return [out]
    flat = []
    for o in out:
        flat.extend(_flatten(o))
    return flat


def export_one(name, out_root, data_root):
    builder, shape, torch_seed, np_seed = MODELS[name]
    model_dir = os.path.join(out_root, name)
    os.makedirs(model_dir, exist_ok=True)
    model_path = os.path.join(model_dir, "model.onnx")

    torch.manual_seed(torch_seed)
    model = builder()
    bn_calibrated = False
    if not isinstance(model, torch.jit.ScriptModule):
        bn_calibrated = calibrate_batchnorm(model, shape)
    model.eval()
    x = torch.from_numpy(test_inputs(name, shape, np_seed)[0])

    # The fused nn.TransformerEncoderLayer fast path (taken under no_grad in
    # eval mode) traces to aten::_transformer_encoder_layer_fwd, which the
    # TorchScript exporter cannot export; turn it off while exporting.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.no_grad():
                torch.onnx.export(model, x, model_path, dynamo=False,
                                  opset_version=OPSET)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)

    onnx_model = onnx.load(model_path)
    onnx.checker.check_model(onnx_model)
    facts = graph_facts(onnx_model)
    if name == "if_model" and "If" not in facts["op_histogram"]:
        raise RuntimeError(f"if_model: exported graph has no If node: {facts['op_histogram']}")

    sess = ort_session(model_path)
    in_names = [i.name for i in sess.get_inputs()]
    out_names = [o.name for o in sess.get_outputs()]
    assert in_names == [v["name"] for v in facts["inputs"]], (in_names, facts["inputs"])
    assert out_names == [v["name"] for v in facts["outputs"]], (out_names, facts["outputs"])
    if len(in_names) != 1:
        raise RuntimeError(f"{name}: expected one graph input, got {in_names}")

    # The test data of a model is rewritten from scratch on every run.
    data_dir = os.path.join(data_root, name)
    for entry in os.listdir(data_dir) if os.path.isdir(data_dir) else []:
        if entry.startswith("test_data_set_"):
            shutil.rmtree(os.path.join(data_dir, entry))

    sets = []
    for n, inp in enumerate(test_inputs(name, shape, np_seed)):
        outs = sess.run(None, {in_names[0]: inp})
        with torch.no_grad():
            ref = _flatten(model(torch.from_numpy(inp)))
        vs_torch = max(float(np.max(np.abs(o - r.numpy()))) for o, r in zip(outs, ref))
        set_dir = os.path.join(data_dir, f"test_data_set_{n}")
        write_tensors(set_dir, "input", in_names, [inp])
        write_tensors(set_dir, "output", out_names, outs)
        sets.append({
            "dir": f"test_data_set_{n}",
            "input_sum": float(inp.sum()),
            "output_shapes": [list(o.shape) for o in outs],
            "max_abs_ort_vs_torch": vs_torch,
        })

    info = {
        "name": name,
        "model_file": "model.onnx",
        "model_sha256": sha256(model_path),
        "model_bytes": os.path.getsize(model_path),
        "opset": OPSET,
        "export": "torch.onnx.export(model, x, path, dynamo=False, opset_version=17)",
        "torch_seed": torch_seed,
        "numpy_seed": np_seed,
        "batchnorm_stats": ("re-estimated in train mode from 4x8 random "
                            "standard-normal inputs (torch RNG)"
                            if bn_calibrated else "none in model"),
        "input_distribution": "float32 standard normal (numpy default_rng)",
        "reference": "onnxruntime CPUExecutionProvider, ORT_DISABLE_ALL",
        **facts,
        "test_data_sets": sets,
        "versions": versions(),
    }
    with open(os.path.join(data_dir, "info.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", metavar="NAME",
                    help=f"models to export (default: all of {', '.join(MODELS)})")
    ap.add_argument("--out", default=os.path.join(REPO, "target", "real-models"),
                    help="where NAME/model.onnx goes (default: target/real-models)")
    ap.add_argument("--data", default=os.path.join(REPO, "tests", "data", "real"),
                    help="where NAME/test_data_set_N and info.json go "
                         "(default: tests/data/real)")
    args = ap.parse_args(argv)

    names = args.models or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; known: {list(MODELS)}")

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    failed = []
    for name in names:
        try:
            info = export_one(name, args.out, args.data)
        except Exception as e:  # keep going; report at the end
            failed.append(name)
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            continue
        top = ", ".join(f"{k}:{v}" for k, v in list(info["op_histogram"].items())[:6])
        print(f"OK   {name}: {info['model_bytes'] / 1e6:.1f} MB, "
              f"{info['num_nodes']} nodes ({top}), sets={len(info['test_data_sets'])}, "
              f"max|ort-torch|={max(s['max_abs_ort_vs_torch'] for s in info['test_data_sets']):.2e}",
              flush=True)
    if failed:
        print(f"{len(failed)} model(s) failed: {' '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
