# %% [markdown]
# # 1. Predicted tokens and candidate probabilities
#
# A language model writes one token at a time. At every step it gives a probability to each of the
# 49,152 tokens in SmolLM2's vocabulary, and the generation loop picks one. ecco_sdk records the top
# candidates of every step, so you can see what else the model considered and how sure it was.

# %%
# %matplotlib inline
import tempfile
from pathlib import Path

import ecco_sdk

lm = ecco_sdk.from_pretrained("smollm2-135m-instruct", verbose=False)
lm

# %% [markdown]
# `from_pretrained` loads the embedded SmolLM2-135M-Instruct (30 layers of 1,536 FFN neurons) without any
# network access; `verbose=False` hides the progress bars. `%matplotlib inline` lets Jupyter draw the
# matplotlib figures that the `.plot()` methods return.

# %%
out = lm.generate("The capital of France is", generate=8)
out

# %% [markdown]
# `generate` returns an `OutputSeq`: the tokens, the candidates of each step, and what was captured
# inside the model (each layer's hidden states and FFN activations, with their shapes in the repr).
# The other notebooks analyse exactly these arrays.
#
# `out.view()` shows the generated text with one card per step. **What to look at:** steps where one
# candidate takes nearly all the probability (the model is sure) against steps where the probability
# is spread over many tokens (the model hesitates, and sampling could take the text elsewhere).

# %%
out.view()

# %% [markdown]
# The numbers behind the view are plain Python data: `out.candidates[step]` lists `Candidate` tuples.

# %%
for token, step in zip(out.output_tokens, out.candidates):
    top3 = ", ".join(f"{c.token!r} {c.prob:.1%}" for c in step[:3])
    print(f"{token!r:>10}  <-  {top3}")

# %% [markdown]
# " Paris" comes with about 77% probability; " London" is in the list too, far behind. After the
# answer the model is much less sure what to write next.
#
# **Sampling.** With `do_sample=True` the loop draws a token instead of taking the most likely one
# (`seed` makes it repeatable). The candidates always describe the model's own distribution at
# temperature 1, before temperature, top-k or top-p reshape it, so greedy and sampled runs can be
# compared step by step.

# %%
sampled = lm.generate("The capital of France is", generate=8, do_sample=True, temperature=1.2, seed=3)
print("greedy: ", repr(out.output_text))
print("sampled:", repr(sampled.output_text))
for token, step in zip(sampled.output_tokens, sampled.candidates):
    listed = [c.token for c in step]
    where = f"candidate #{listed.index(token) + 1}" if token in listed else "outside the top 10"
    print(f"{token!r:>12}  {where}")

# %% [markdown]
# Once the sampled text leaves the likely path, later steps pick tokens from further down the list,
# and the text drifts.
#
# **Saving a run.** `out.save(path)` writes one file (JSON metadata and compressed arrays);
# `ecco_sdk.load(path, lm=lm)` reads it back with the model reattached for analyses that need weights.

# %%
path = out.save(Path(tempfile.mkdtemp()) / "capital.ecco")
again = ecco_sdk.load(path, lm=lm)
print(again.output_text == out.output_text, f"{path.stat().st_size / 1e6:.1f} MB")

# %% [markdown]
# Next: [02-saliency](02-saliency.ipynb) asks which input tokens each of these predictions depended on.
