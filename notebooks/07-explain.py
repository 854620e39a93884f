# %% [markdown]
# # 7. Explaining factors with an LLM, and reading the scores
#
# Looking at highlighted tokens works for a handful of factors. For many, ecco_sdk asks an LLM to write
# a one-line explanation of each factor from its most active tokens (with worked examples from a
# built-in library), then **scores** each explanation by whether it predicts the factor on held-out
# text it has never seen.
#
# Here the explainer is the local backend, offline: the embedded Qwen2.5-Coder-1.5B-Instruct when it is
# installed (`make install` does), else the small SmolLM2-135M, whose explanations score near chance
# (each of its explanations then carries a note that says so). The same model also scores the
# explanations. This notebook is about the workflow and about reading the scores, which are what tell
# you whether an explanation is any good. `backend="openai:<model>"` points the same calls at any
# OpenAI-compatible server instead.

# %%
import ecco_sdk
from ecco_sdk.explain import explain_factors, format_explanations, score_explanations
from ecco_sdk.factors import fit_factor_model, texts_activations

enc = ecco_sdk.from_pretrained("minilm-l6", verbose=False)
corpus = [
    "Apples, pears, plums, and figs are fruit.",
    "We bought bread, milk, eggs and cheese.",
    "Paris, London and Rome are cities.",
    "He said she would come back tomorrow.",
    "She told him that they were leaving.",
]


def without_specials(pairs):
    # [CLS] and [SEP] would each take a factor of their own (notebook 06): leave them out
    return [(tokens[1:-1], acts[:, :, 1:-1]) for tokens, acts in pairs]


pairs = without_specials(texts_activations(enc, corpus))
model = fit_factor_model([acts for _, acts in pairs], n_components=2)
model

# %% [markdown]
# A corpus-fitted factor model (notebook 06) with two factors, applied to a new sentence that has
# something of both: a list, and reported speech.

# %%
sentence = "She said that apples, pears and figs are fruit."
((tokens, acts),) = without_specials(texts_activations(enc, [sentence]))
nmf = model.transform(acts, tokens)
nmf.explore()

# %% [markdown]
# The first factor (shown as "Factor 1": the view counts from 1, Python from 0) fires on the list:
# commas, " and", the plural "##s"; the second on "she said that". Now one explanation per factor.
# `n_examples` worked examples are retrieved from the library (`retriever="bm25"` is lexical and
# needs no embeddings; the default, `"hybrid"`, adds MiniLM embeddings stored in Chroma), and the
# prompt is packed to at most `token_budget` tokens.

# %%
explanations = explain_factors(
    nmf.tokens,
    nmf.factors,
    backend="local",  # offline: the embedded 1.5B when installed, else SmolLM2
    retriever="bm25",
    n_examples=1,
    token_budget=512,
    max_tokens=32,
)
print(format_explanations(explanations))

# %% [markdown]
# Each `Explanation` keeps what produced it: `e.example_ids` names the library examples used,
# `e.messages` is the exact prompt and `e.raw` the model's unedited answer. An answer that nearly copies
# a worked example's explanation is asked again without that example; `e.copied_from` names the copied
# example and `e.notes` says what was done. This is the factor as the
# LLM saw it, each token followed by its activation on a 0-10 scale:

# %%
print(explanations[0].messages[-1]["content"])

# %% [markdown]
# **Scoring.** `score_explanations` applies the *same fitted factor model* to held-out texts (through
# `factor_fn`) and asks the LLM to use each explanation:
#
# * **simulation**: from the explanation alone, predict the factor's 0-10 activation at every
#   held-out token; the score is the correlation with the real activations (1 = perfect, 0 = no
#   relation);
# * **detection**: say whether a snippet contains what the explanation describes; the score is the
#   balanced accuracy over snippets where the factor fires and where it is silent (0.5 = chance).
#
# Each explanation is scored next to two **baselines**, by the same LLM: a *random* explanation (one
# written for another factor) and *top-tokens* (just a list of the factor's strongest tokens). An
# explanation is worth something only where it beats both.

# %%
held_out = ["Cats, dogs, birds and fish", "She said he told them"]  # one text per factor
factor_fn = model.factor_fn(lambda texts: without_specials(texts_activations(enc, texts)))
report = score_explanations(explanations, factor_fn, held_out, backend="local", per_class=1)
print(report)


# %% [markdown]
# **How to read the table.** One row per factor. For each method come the explanation's score, then
# the baselines' (`sim:random`, `sim:top-tokens`, `det:...`); "—" means a method could not be applied,
# and a `note` line says why. Read across a row: an explanation that does not beat its top-tokens
# baseline says nothing that the list of active tokens did not already say, and one that does not
# beat the random baseline says nothing about this factor at all. The two held-out texts were
# chosen so that each factor fires in one and stays silent in the other, which detection needs; with
# `per_class=1` it judges only two snippets, so its scores are 0, 0.5 or 1. Real use wants more
# held-out text (`ecco_sdk.explain.HELD_OUT_TEXTS` holds eight varied texts); `bench/explain.py`
# measures both local models that way. The same numbers as data:


# %%
def fmt(value):
    return "—" if value is None else f"{value:.2f}"


for f in report.factors:
    own, top = f.explanation.scores, f.baseline("top-tokens").scores
    print(f"factor {f.factor}: {f.explanation.text!r}")
    print(f"  simulation {fmt(own.simulation)} (top-tokens baseline {fmt(top.simulation)})")
    print(f"  detection {fmt(own.detection)} (top-tokens baseline {fmt(top.detection)})")

# %% [markdown]
# The explanations can go back into the factor view:

# %%
nmf.explore(explanations=[e.text for e in explanations])

# %% [markdown]
# For one text end to end there is `ecco_sdk.explain.explain_text(lm, text, n_components=3)`, which the
# CLI (`ecco-sdk explain`) and the app use. It leaves out each text's first token (the attention sink
# of notebook 05) unless you pass `skip_first=0`. Next: [08-similarity](08-similarity.ipynb).
