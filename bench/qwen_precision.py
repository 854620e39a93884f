"""bf16 (default) vs fp32 (GGUF de-quantized in fp32) on qwen2.5-coder-1.5b-instruct: next-token agreement.

python bench/qwen_precision.py      # about 11 GB of RAM at its peak (the fp32 loads)
"""

import gc
import resource
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils.quantization_config import GgufConfig

from ecco_sdk.models import gguf_path, resolve_source

torch.set_num_threads(2)
folder, _ = resolve_source("qwen2.5-coder-1.5b-instruct", verbose=False)
gguf = gguf_path()
tok = AutoTokenizer.from_pretrained(folder)
prompts = [
    "The capital of France is Paris, and the capital of Germany is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "<div><p>Hello</p><span>world</span></div> The closing tags here are",
    "I bought apples, bread, cheese and rice at the market, then made soup for",
    "In 1969, 2001 and 2024 the numbers 3,141 and 42 appeared in",
    "<|im_start|>user\nName the pattern: 'rice', 'soup', 'bread'.<|im_end|>\n<|im_start|>assistant\n",
]
ids = [tok(p, return_tensors="pt").input_ids for p in prompts]


def logprobs(model):
    with torch.inference_mode():
        return [torch.log_softmax(model(input_ids=i).logits[0].float(), -1) for i in ids]


def run(label, **kw):
    t = time.perf_counter()
    m = AutoModelForCausalLM.from_pretrained(**kw).eval()
    lp = logprobs(m)
    print(
        f"{label}: load+forward {time.perf_counter() - t:.1f} s, peak RSS so far "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB",
        flush=True,
    )
    del m
    gc.collect()
    return lp


bf16 = run("bf16 (cache)", pretrained_model_name_or_path=folder, dtype=torch.bfloat16)
f32w = run(
    "fp32 compute on bf16-stored weights (dtype='float32')", pretrained_model_name_or_path=folder, dtype=torch.float32
)
ref = run(
    "fp32 reference (GGUF de-quantized in fp32)",
    pretrained_model_name_or_path=str(gguf.parent),
    gguf_file=gguf.name,
    dtype=torch.float32,
    quantization_config=GgufConfig(dequantize=True),
)

for label, got in (("bf16", bf16), ("fp32-on-bf16-weights", f32w)):
    agree = total = 0
    max_top1 = max_top10 = 0.0
    last = []
    for g, r in zip(got, ref, strict=True):
        top = r.argmax(-1)
        agree += int((g.argmax(-1) == top).sum())
        total += len(top)
        d_top1 = (g.gather(-1, top[:, None]) - r.gather(-1, top[:, None])).abs()
        max_top1 = max(max_top1, float(d_top1.max()))
        t10 = r.topk(10, -1).indices
        max_top10 = max(max_top10, float((g.gather(-1, t10) - r.gather(-1, t10)).abs().max()))
        last.append(int(g[-1].argmax() == r[-1].argmax()))
    print(
        f"{label} vs fp32 reference over {total} positions of {len(prompts)} prompts: top-1 agreement "
        f"{agree}/{total} ({agree / total:.1%}); last-position top-1 agree {sum(last)}/{len(last)}; "
        f"max |logprob diff| on the reference top-1 token {max_top1:.3f}, over the reference top-10 {max_top10:.3f}"
    )
for p, g, r in zip(prompts, bf16, ref, strict=True):
    print(
        repr(p[-30:]),
        "->",
        repr(tok.decode(int(r[-1].argmax()))),
        f"{float(r[-1].max()):.3f}",
        "| bf16:",
        repr(tok.decode(int(g[-1].argmax()))),
        f"{float(g[-1].max()):.3f}",
    )
