"""Prompt and generation tok/s of qwen2.5-coder-1.5b-instruct: llama.cpp (xllamacpp, Q4_K_M) vs transformers bf16.

python bench/engines.py llama 1 && python bench/engines.py transformers 1     # engine, threads
"""

import sys
import time

PROMPT = (
    "Here are tokens of a text with the activation of one neuron on each, 0-10:\n"
    + "\n".join(f"token{i}\t{i % 11}" for i in range(60))
    + "\nDescribe in one line what the neuron fires on."
)
MESSAGES = [{"role": "user", "content": PROMPT}]
N_GEN = 32
engine, threads = sys.argv[1], int(sys.argv[2])
if engine == "llama":
    import xllamacpp as xlc

    from ecco_sdk.models import gguf_path

    p = xlc.CommonParams()
    p.model.path = str(gguf_path(verbose=False))
    p.hostnames = ["127.0.0.1"]
    p.port = 0
    p.n_ctx = 2048
    p.n_parallel = 1
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    p.cache_prompt = False
    s = xlc.Server(p)
    for _rep in range(2):
        out = s.handle_chat_completions(
            {"messages": MESSAGES, "max_tokens": N_GEN, "temperature": 0, "ignore_eos": True}
        )
        t = out["timings"]
        print(
            f"llama.cpp Q4_K_M {threads} thr: prompt {t['prompt_n']} tok {t['prompt_per_second']:.1f} tok/s, "
            f"gen {t['predicted_n']} tok {t['predicted_per_second']:.1f} tok/s",
            flush=True,
        )
else:
    import torch

    from ecco_sdk.models import load

    torch.set_num_threads(threads)
    lm = load("qwen2.5-coder-1.5b-instruct", verbose=False)
    ids = lm.tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_tensors="pt", return_dict=True)[
        "input_ids"
    ]
    for _rep in range(2):
        with torch.inference_mode():
            t0 = time.perf_counter()
            out = lm.model(input_ids=ids, use_cache=True)
            t1 = time.perf_counter()
            gen = lm.model.generate(ids, max_new_tokens=N_GEN, min_new_tokens=N_GEN, do_sample=False)
            t2 = time.perf_counter()
        n_new = gen.shape[1] - ids.shape[1]
        decode = (t2 - t1) - (t1 - t0)  # generate() re-runs the prompt once
        print(
            f"transformers bf16 {threads} thr: prompt {ids.shape[1]} tok {ids.shape[1] / (t1 - t0):.1f} tok/s, "
            f"gen {n_new} tok {n_new / decode:.1f} tok/s",
            flush=True,
        )
