# %% [markdown]
# # 4. Comparing candidate tokens across layers: " is" or " are"?
#
# In "The keys to the cabinet ___" the verb must agree with "keys" (plural), although the nearest
# noun, "cabinet", is singular. `rankings_watch` follows a few chosen candidates through every layer
# at one position, so we can see where the model settles the agreement.

# %%
# %matplotlib inline
import ecco_sdk

lm = ecco_sdk.from_pretrained("smollm2-135m-instruct", verbose=False)
lm

# %%
out = lm.generate("The keys to the cabinet", generate=1)
[(c.token, round(c.prob, 3)) for c in out.candidates[0][:4]]

# %% [markdown]
# The model's answer is " are". Now the rank of " is" and " are" at every layer (1 = top choice):

# %%
watch = out.rankings_watch([" is", " are"])
watch.plot()

# %% [markdown]
# **What to look at.** Up to layer 26, " is" ranks *above* " are" in every layer: the middle of the
# model leans towards the singular (or just the more common) verb. In the last three layers " are"
# jumps to the top (rank 1 or 2) while " is" falls back. The agreement is settled at the very end of
# the model.

# %%
for layer, (r_is, r_are), (p_is, p_are) in list(zip(watch.layers, watch.ranks, watch.probs))[-5:]:
    print(f"layer {layer}: ' is' #{r_is} ({p_is:.1%})   ' are' #{r_are} ({p_are:.1%})")

# %% [markdown]
# The control: make the head noun singular and the attractor plural.

# %%
control = lm.generate("The key to the cabinets", generate=1)
print("answer:", repr(control.output_text))
control.rankings_watch([" is", " are"]).plot()

# %% [markdown]
# Now " is" wins in the last layers and " are" stays behind. In both sentences " is" leads through
# most of the middle layers, so those layers have not resolved the agreement yet; only the last
# layers tell the two sentences apart, which is where this small model settles number agreement.
#
# Watched tokens must be single tokens (note the leading space); token ids work too, and `position=`
# watches any position of the text, prompt included.
#
# Next: [05-nmf-causal](05-nmf-causal.ipynb) looks at neurons instead of predictions.
