# %% [markdown]
# # 5. Neuron factors (NMF) in a causal model
#
# Every FFN layer of SmolLM2 has 1,536 neurons; over 30 layers that is 46,080 numbers per token.
# Non-negative matrix factorization (NMF) compresses them into a few **factors**: groups of neurons
# that fire together, with a strength at each token. Reading where each factor fires tells you what
# the groups respond to.

# %%
# %matplotlib inline
import ecco_sdk

lm = ecco_sdk.from_pretrained("smollm2-135m-instruct", verbose=False)
lm

# %%
text = (
    "Shopping list: apples, pears, 3 lemons and 12 eggs. On Monday, March 3, Anna flew from Paris to "
    'Berlin; she said it was "wonderful". Then'
)
out = lm.generate(text, generate=8)
out.activations.shape  # (layers, neurons, tokens)

# %%
nmf = out.run_nmf(n_components=6)
print(nmf)
nmf.plot()

# %% [markdown]
# **What to look at.** The first factor ("factor 1" in the plot, `nmf.factors[0]` in Python) is one
# huge spike on the very first token. Causal models pour
# enormous activations into the first position (it serves as an "attention sink"), far larger than
# anywhere else, so NMF spends a whole factor on it, and its low relative error mostly measures how
# well that one token is reproduced. Leave the first token out with `positions`:

# %%
nmf = out.run_nmf(n_components=6, positions=slice(1, None))
print(nmf)
nmf.explore()


# %% [markdown]
# Click a factor row to highlight its tokens (in a live notebook); the "All factors" line colours each
# token by its strongest factor. The view counts factors from 1; in Python they are numbered from 0.
# **What to notice:** the factors follow the role of a token in the sentence more than its spelling:
# the ends of sentences and clauses, list items (digits, commas and " and"), the prepositions of the
# journey (" from", " to"), the people (" she", " it", " Anna"), the quoted word, and the lone space
# tokens SmolLM2 writes before a digit. The same lists as text:


# %%
def top_tokens(result, n=5):
    for k in range(result.n_components):
        order = result.factors[k].argsort()[::-1][:n]
        print(f"factor {k}:", "  ".join(repr(result.tokens[i]) for i in order))


top_tokens(nmf)

# %% [markdown]
# Each factor is a group of neurons: `top_neurons(k)` gives its strongest ones as
# (layer, neuron, weight). They sit in the last layers (28 and 29; FFN layers count from 0 here,
# whereas the logit lens of notebook 03 numbers block outputs 1-30), whose activations are the
# largest.

# %%
nmf.top_neurons(0, n=5)

# %% [markdown]
# **A layer range.** `from_layer`/`to_layer` (half-open, as in the original ecco) factorize only some
# layers. Because the last layers dominate the whole-model factors, the early layers are worth a
# separate look: there the groups follow what a token *is* (fruit and cities, days and months,
# punctuation) more than what it does in the sentence.

# %%
early = out.run_nmf(n_components=6, from_layer=0, to_layer=6, positions=slice(1, None))
top_tokens(early)
early.explore()

# %% [markdown]
# Next: [06-nmf-encoder](06-nmf-encoder.ipynb) does the same on a BERT-style encoder, across many
# texts at once; [07-explain](07-explain.ipynb) asks an LLM to put factors into words.
