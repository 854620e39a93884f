# %% [markdown]
# # 2. Input saliency: which input tokens made the model say that?
#
# Attribution (saliency) methods give each earlier token a share of the credit for one output token.
# ecco_sdk computes them for every generated token at once. The default, **integrated gradients**
# (IG), adds up gradients along a straight path from a baseline (all-zero embeddings) to the real
# input. `n_steps` sets how many points of that path are used: the default 50 is more accurate, 16
# keeps this notebook quick.

# %%
# %matplotlib inline
import numpy as np

import ecco_sdk

lm = ecco_sdk.from_pretrained("smollm2-135m-instruct", verbose=False)
lm

# %%
out = lm.generate("The Eiffel Tower is located in the city of", generate=2, attribution=["ig"], n_steps=16)
out.output_tokens

# %% [markdown]
# **Minimal view.** Each input token is shaded by its share of the credit for one output token
# (`target=0`, the first generated token, " Paris"). **What to look at:** the darkest shading sits on
# " Eiffel", the word that carries the fact, with " Tower" and " city" next, while "is", "located",
# "in" and "the" get little. The first token, "The", takes a share too: causal models lean on their
# first position whatever it holds (notebook 05 shows how hard).

# %%
out.primary_attributions("ig", target=0)

# %% [markdown]
# **Detailed view.** The same scores written as percentages under the tokens, for every generated
# token: hover over or click an underlined output token to switch which one is explained (the saved
# notebook shows the last one; the switching script runs in a live Jupyter session).

# %%
out.primary_attributions("ig", style="detailed")

# %% [markdown]
# The scores are plain arrays in `out.attributions["ig"]`. `scores()` is the original ecco's
# measure, one row per generated token (normalised to sum to 1, NaN where a position cannot
# influence the target); `word_scores` adds up the sub-word pieces of each word.

# %%
attr = out.attributions["ig"]
words, scores = attr.word_scores(out.tokens)
for i in np.argsort(-np.nan_to_num(scores[0]))[:5]:  # the five words with most credit for " Paris"
    print(f"{words[i]!r:>12} {scores[0, i]:.0%}")

# %% [markdown]
# **Is 16 steps enough?** IG has a check built in: the signed attributions should add up to the
# change in the target's probability between the baseline and the real input. `attr.delta` is the
# gap, per target. When it is not small next to the probability itself, raise `n_steps`. Below, the
# gap is small for " Paris" but large for the ",": 16 steps are too few for that token, and the
# default `n_steps=50` brings both gaps close to zero.

# %%
for j, pos in enumerate(attr.target_positions):
    prob = out.candidates[j][0].prob
    print(f"{out.tokens[pos]!r}: probability {prob:.2f}, IG gap {attr.delta[j]:+.3f}")

# %% [markdown]
# **Other methods.** `"saliency"` (the plain gradient), `"grad_x_input"` and `"ablation"` are
# cheaper and noisier. A method not computed at generation time is computed when first viewed. Here
# the plain gradient spreads its credit more evenly over the sentence than IG does.

# %%
out.primary_attributions("saliency", target=0)

# %% [markdown]
# To explain a continuation you choose (instead of one the model generated), use
# `lm.attribute(text, target=" Paris")`; adding `foil=" London"` attributes the *difference* between
# two candidates ("why Paris rather than London?"), stored as `out.attributions["ig:contrast"]`.
#
# Next: [03-layer-predictions](03-layer-predictions.ipynb) looks inside the model's layers.
