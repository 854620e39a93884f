# %% [markdown]
# # 6. Neuron factors in a BERT-style encoder, one text and a corpus
#
# The original ecco's best-known factor: a group of BERT neurons that fires on commas. Here the
# embedded all-MiniLM-L6-v2 (a 6-layer BERT-style encoder) runs over a batch of texts; an encoder
# does not generate, so we call the model on the texts directly.

# %%
# %matplotlib inline
import ecco_sdk
from ecco_sdk.factors import apply_factor_model, fit_factor_model

enc = ecco_sdk.from_pretrained("minilm-l6", verbose=False)
texts = [
    "I love commas, really, I do.",
    "Apples, pears, plums, and figs are fruit.",
    "He said she would come back tomorrow.",
    "The cat sat on the mat, then slept.",
    "Numbers like 1, 2, 3 and 4 are small.",
    "Paris, London and Rome are cities.",
    "She told him that they were leaving.",
    "We bought bread, milk, eggs and cheese.",
]
batch = enc(texts)  # one padded forward pass; padding is removed from the results
print(enc)
print(batch)

# %% [markdown]
# `batch[i]` is the `OutputSeq` of text `i`, so everything from the causal notebooks works on it.
# Factors of one text:

# %%
one = batch[1].run_nmf(n_components=4)
print(batch[1].tokens)
one.explore()

# %% [markdown]
# **What to notice.** With only 16 tokens the four factors are already distinct: the plural "##s"
# pieces, the commas (and the " and" that ends the list), the verb with the full stop and `[SEP]`,
# and the special `[CLS]` token, which, like the first token of a causal model, has a factor to
# itself.
#
# **A corpus.** Factors of one text are numbered by how much they fire *in that text*, so factor 1 of
# one text has nothing to do with factor 1 of another. Fitting one NMF on the positions of many texts
# gives a `FactorModel` whose factors mean the same neurons everywhere.
# (`ecco_sdk.factors.fit_corpus_nmf(enc, texts)` does the capture and the fit in one call.)

# %%
model = fit_factor_model([seq.activations for seq in batch], n_components=6)
print(model)

for k in range(model.n_components):
    hits = []
    for seq in batch:
        factors = model.transform(seq.activations, seq.tokens).factors[k]
        hits += [(float(v), tok) for v, tok in zip(factors, seq.tokens)]
    top = [tok for _, tok in sorted(hits, reverse=True)[:8]]
    print(f"factor {k}:", " ".join(top))

# %% [markdown]
# Across the corpus the factors split the tokens cleanly: one for the pronouns and reporting verbs
# ("said", "told", "she", "they"), one each for `[CLS]` and `[SEP]`, one for commas and " and", one
# for plural endings and the things in a list, one for numbers. Apply the model to a new text:
# factor numbers keep their meaning.

# %%
new = apply_factor_model(model, enc, "Oranges, lemons, and limes, please. He said they would.")
new.explore()

# %% [markdown]
# The comma factor lights up on the new commas and on " and", the plural factor on "##s", and the
# pronoun/verb factor on "he said they would", without refitting.
#
# Next: [07-explain](07-explain.ipynb) asks an LLM to describe factors like these in words, and scores
# the descriptions.
