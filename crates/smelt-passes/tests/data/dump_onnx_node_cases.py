"""Extracts the single-node ONNX backend tests of the ops smelt's reference evaluator takes into
one JSON file (inputs, attributes, expected outputs; tensors as little-endian hex), so that the
Rust test tests/onnx_node_cases.rs checks the evaluator against the ONNX suite's expected outputs
without Python or protobuf. Run by hand:

    python3 dump_onnx_node_cases.py OPS ../../../shared/onnx-node-tests onnx_node_cases.json

where OPS is a comma-separated list of op types. The ONNX tests are Apache-2.0 (the ONNX project).
"""
import onnx, os, json, glob, sys
from onnx import numpy_helper
import numpy as np
OPS=set(sys.argv[1].split(','))
ROOT=sys.argv[2]
cases=[]
def tj(arr):
    if arr.dtype.kind in 'OUS': return None
    dt=onnx.helper.np_dtype_to_tensor_dtype(arr.dtype)
    return {'dtype':int(dt),'dims':list(arr.shape),'hex':np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder('<')).tobytes().hex()}
for d in sorted(glob.glob(ROOT+'/test_*')):
    try: m=onnx.load(d+'/model.onnx')
    except Exception: continue
    g=m.graph
    if len(g.node)!=1: continue
    n=g.node[0]
    if n.op_type not in OPS or n.domain not in ('','ai.onnx'): continue
    opset=max([o.version for o in m.opset_import if o.domain in ('','ai.onnx')] or [0])
    attrs={}
    ok=True
    for a in n.attribute:
        v=onnx.helper.get_attribute_value(a)
        if a.type==onnx.AttributeProto.INT: attrs[a.name]={'i':v}
        elif a.type==onnx.AttributeProto.FLOAT: attrs[a.name]={'f':v}
        elif a.type==onnx.AttributeProto.STRING: attrs[a.name]={'s':v.decode()}
        elif a.type==onnx.AttributeProto.INTS: attrs[a.name]={'is':list(v)}
        elif a.type==onnx.AttributeProto.TENSOR:
            t=tj(numpy_helper.to_array(v))
            if t is None: ok=False
            attrs[a.name]={'t':t}
        else: ok=False
    if not ok: continue
    for ds in sorted(glob.glob(d+'/test_data_set_*')):
      try:
          ins={}; 
          for f in glob.glob(ds+'/input_*.pb'):
              t=onnx.TensorProto(); t.ParseFromString(open(f,'rb').read()); ins[t.name]=t
          outs=[]
          for k in range(len(g.output)):
              f=ds+f'/output_{k}.pb'
              t=onnx.TensorProto(); t.ParseFromString(open(f,'rb').read()); outs.append(tj(numpy_helper.to_array(t)))
          inputs=[]
          gi=[i.name for i in g.input]
          bad=False
          for nm in n.input:
              if nm=='': inputs.append(None); continue
              if nm in ins: 
                  x=tj(numpy_helper.to_array(ins[nm]))
              else:
                  # positional
                  idx=gi.index(nm) if nm in gi else None
                  f=ds+f'/input_{idx}.pb'
                  t=onnx.TensorProto(); t.ParseFromString(open(f,'rb').read()); x=tj(numpy_helper.to_array(t))
              if x is None: bad=True
              inputs.append(x)
          if bad or any(o is None for o in outs): continue
          size=sum(len(x['hex']) for x in inputs if x)+sum(len(o['hex']) for o in outs)
          if size>200000: continue
          cases.append({'name':os.path.basename(d),'opset':opset,'op':n.op_type,'attrs':attrs,'inputs':inputs,'outputs':outs,'n_out':len(n.output)})
      except Exception:
        pass  # sequence/optional values and other data the JSON cannot hold
# MaxPool's Indices output is not evaluated.
bad=('with_argmax','INT2','UINT2','int2','uint2','e4m3','e5m2','FLOAT4','float4','FLOAT8','e8m0','training','BFLOAT16','bfloat16')
# Ops whose semantics did not change since their first opset: older tests are valid too.
stable={'And','Or','Xor','Not','Equal','Less','Greater','Abs','Neg','Ceil','Floor','Exp','Log','Sqrt','Sin','Cos','Tanh','Sigmoid','Relu','Erf','Sign','Reciprocal','IsNaN','LessOrEqual','GreaterOrEqual','Softsign','Softplus','Where','Expand','Tile','Range','ConstantOfShape','Size','Mod','Round','HardSwish','Gelu','Transpose','Concat','Gather','Identity','MatMul','Unsqueeze','Squeeze','Reshape','Flatten','Pow','Sub','Mul','Div','Add'}
out=[]
for x in cases:
    if any(b in x['name'] for b in bad): continue
    if x['opset']<13 and x['op'] not in stable: continue
    size=sum(len(i['hex']) for i in x['inputs'] if i)+sum(len(o['hex']) for o in x['outputs'])
    if size>20000: continue
    out.append(x)
json.dump(out,open(sys.argv[3],'w'),separators=(',',':'))
print(len(out))
