# %% [markdown]
# # 3. Does the model know where Heathrow Airport is? Layer predictions and rankings
#
# The model picks its answer after the last layer. But at which layer does the answer appear? The
# **logit lens** reads every layer's output as if it were the last one: the hidden state goes through
# the model's own final norm and output embedding, which gives a prediction per layer.

# %%
# %matplotlib inline
import torch

import ecco_sdk

lm = ecco_sdk.from_pretrained("smollm2-135m-instruct", verbose=False)
lm

# %%
out = lm.generate("Heathrow Airport is located in the city of", generate=3)
out.view()

# %% [markdown]
# The model answers " London", with about 44% probability. Now the top five predictions of each of
# the 30 layers, for the position of " London":

# %%
lp = out.layer_predictions(topk=5)
lp.plot()

# %% [markdown]
# **What to look at.** Early and middle layers predict junk: generic continuations such as ",",
# " (" or "." that would fit after almost any word and say nothing about Heathrow. From layer 25 the
# guesses start to look like the beginnings of place names (" K", " D", " central"), and " London"
# appears only at layer 28, where it is already the top prediction. The data behind the figure:

# %%
first = next(layer for layer, top in zip(lp.layers, lp.tokens) if top[0] == " London")
print("first layer whose top prediction is ' London':", first, "of", lm.n_layers)
for layer, top, probs in list(zip(lp.layers, lp.tokens, lp.probs))[-4:]:
    print(f"layer {layer}:", ", ".join(f"{t!r} {p:.0%}" for t, p in zip(top[:3], probs[:3])))

# %% [markdown]
# **Rankings.** `out.rankings()` follows each generated token instead: its rank at every layer
# (1 = that layer's top choice). " London" sits thousands of places down until layer 23 and climbs
# to 1 in the last three layers, while the "." after it is among the top four at every layer:
# punctuation after a city name needs no knowledge of geography.

# %%
ranks = out.rankings()
ranks.plot()

# %% [markdown]
# **The final-norm fix.** The original ecco projected each layer's hidden state straight through the
# output embedding and skipped the model's final norm. SmolLM2's final RMSNorm rescales every one of
# the 576 dimensions by a learned weight, so skipping it scrambles the logits. ecco_sdk applies the
# norm first (`lm.adapter.unembed`), and when a model loads it checks that unembedding the last
# layer reproduces the model's own logits (`lm.adapter.lens_checked`). The comparison, by hand:

# %%
pos = out.generated_positions[0]  # where " London" is; it is predicted from the state at pos - 1
states = torch.from_numpy(out.hidden_states[1:, pos - 1])  # every block's output there
london = int(out.token_ids[pos])
with torch.no_grad():
    with_norm = lm.adapter.unembed(states)  # final norm, then output embedding (ecco_sdk)
    without_norm = lm.adapter.head(states)  # output embedding only (the original ecco)


def ranks_of(logits):
    return ((logits > logits[:, [london]]).sum(dim=1) + 1).tolist()


print("lens checked:", lm.adapter.lens_checked)
print("rank of ' London', last 6 layers, with the final norm:", ranks_of(with_norm)[-6:])
print("rank of ' London', last 6 layers, without it:         ", ranks_of(without_norm)[-6:])
top_without = lm.token_strings([int(without_norm[-1].argmax())])[0]
print("top token of the last layer without the norm:", repr(top_without))

# %% [markdown]
# Without the norm, even the last layer, which *is* the model's output, ranks " London" thousands of
# places down and predicts an unrelated token, and every earlier layer looks like noise. With it, the
# last layer agrees with the model and the earlier layers become readable.
#
# Next: [04-rankings-watch](04-rankings-watch.ipynb) compares two candidates layer by layer.
