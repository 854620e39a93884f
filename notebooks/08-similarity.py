# %% [markdown]
# # 8. Representation similarity across layers (CKA)
#
# How much does each layer change what the model represents? **Centered kernel alignment** (CKA)
# compares two layers' activations over the same tokens and gives 1 when they hold the same
# information up to a rotation and scale, and near 0 when they are unrelated. Computing it for every
# pair of layers shows the model's stages.

# %%
# %matplotlib inline
import numpy as np

import ecco_sdk
from ecco_sdk.render import similarity_figure
from ecco_sdk.similarity import layer_similarity

lm = ecco_sdk.from_pretrained("smollm2-135m-instruct", verbose=False)
lm

# %%
texts = [
    "Shopping list: apples, pears, 3 lemons and 12 eggs.",
    "On Monday, March 3, Anna flew from Paris to Berlin.",
    'She said it was "wonderful", and then she went home.',
    "def mean(values):\n    return sum(values) / len(values)",
    "The keys to the cabinet are on the table by the door.",
]
batch = lm(texts)
# every text's first token is an outlier (an "attention sink", see notebook 05); leave it out
acts = np.concatenate([seq.activations[:, :, 1:] for seq in batch], axis=-1)
acts.shape  # (layers, neurons, tokens of all texts)

# %% [markdown]
# CKA needs many tokens to be reliable, so the FFN activations of five texts are put side by side.
# `layer_similarity` compares every layer with every other (`method="cka"` by default; `"svcca"`,
# `"pwcca"` and `"cca"` also exist). For a single run, `out.layer_similarity()` does the same.

# %%
sim = layer_similarity(acts, method="cka")
similarity_figure(sim, [f"L{i}" for i in range(lm.n_layers)], title="Linear CKA between FFN layers")

# %% [markdown]
# **What to look at.** First, the dark band along the diagonal: neighbouring layers are alike, so the
# representation drifts gradually rather than being rebuilt at every layer. Second, square blocks
# along the diagonal, the model's stages: roughly layers 3-7, 11-22 and 23-29 (FFN layers counted from
# 0). Third, pale rows and columns: a few early layers (1, 2, 9 and 10) are very like *each other*
# and unlike everything else. Check the figure against the numbers:

# %%
print("CKA of each layer with the next: median", np.median(np.diag(sim, k=1)).round(2))
mean_to_others = (sim.sum(axis=1) - 1) / (lm.n_layers - 1)
odd = sorted(np.argsort(mean_to_others)[:4].tolist())
print("least like the rest:", odd, "with mean CKA", mean_to_others[odd].round(2))
print("but like each other:")
print(sim[np.ix_(odd, odd)].round(2))

# %% [markdown]
# Keep in mind what linear CKA measures: it weighs tokens by the size of their activations, so layers
# whose activity is dominated by a few very large values on a few tokens look alike and unlike the
# rest (the first tokens were dropped for the same reason). `kernel="rbf"` and `debiased=True` are
# the other options from Kornblith et al. (2019); NMF restricted to those layers
# (`out.run_nmf(from_layer=9, to_layer=11)`, notebook 05) shows which tokens they respond to.
#
# That is the end of the SDK tour; [09-app-api](09-app-api.ipynb) calls the same analyses through the
# Gradio app's API with `gradio_client`.
