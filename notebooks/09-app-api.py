# %% [markdown]
# # 9. Calling the app's API with `gradio_client`
#
# Every tab of the ecco_sdk app (`space/app.py`, started by `make app` or published as a Hugging Face
# Space) is also an API endpoint: `/generate`, `/saliency`, `/rankings`, `/nmf` and `/explain`. Each
# returns the picture the tab shows (HTML) *and* the numbers behind it as plain JSON, so a script, a
# dashboard or another service can use the analyses without Python access to the model.
#
# This notebook starts the app inside this kernel on a free loopback port, so it runs offline. Against a
# running app or a Space, only the first line changes: `Client("http://127.0.0.1:7860/")` for
# `make app`, or `Client("OWNER/NAME")` for a Space id.

# %%
import socket

from gradio_client import Client
from gradio_client.exceptions import AppError

from ecco_sdk.app import load_app

app = load_app()  # space/app.py, the file `make app` and the Space run
with socket.socket() as s:  # a free port on loopback
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
demo = app.build_app()
demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
client = Client(f"http://127.0.0.1:{port}/", verbose=False)
print("serving", demo.ecco_server.models, "on port", port)

# %% [markdown]
# `client.view_api()` prints every endpoint with its parameters, their types and defaults: the same
# names as the app's widgets, documented from the endpoint docstrings.

# %%
list(client.view_api(print_info=False, return_format="dict")["named_endpoints"])

# %% [markdown]
# **Generate.** The first call loads the model (a few seconds). It returns the candidates view and the
# run as JSON; the run's `run_id` lets the other endpoints analyse *this* generation without
# recomputing it.

# %%
html, run = client.predict("The capital of France is", "smollm2-135m-instruct", 6, api_name="/generate")
print(repr(run["output_text"]), "run_id:", run["run_id"])
for step, cands in enumerate(run["candidates"][:3]):
    print(step, ", ".join(f"{c['token']!r} {c['prob']:.2f}" for c in cands[:3]))

# %% [markdown]
# **Saliency.** Gradient-based attribution of the chosen output token (`-1` = the last generated one;
# the JSON holds every generated token). `scores_l2` is the original ecco's normalised score: one row
# per generated token, one value per earlier token, each row summing to 1.

# %%
html, sal = client.predict(run["run_id"], "grad_x_input", "minimal", 0, 8, api_name="/saliency")
first = sal["scores_l2"][0][: run["n_input_tokens"]]
print("attribution of", repr(run["tokens"][run["n_input_tokens"]]), "over the prompt:")
for tok, score in zip(run["tokens"], first):
    print(f"{tok!r:>10} {score:.2f}")

# %% [markdown]
# **Layer rankings.** The logit lens: the rank of every generated token at every layer, and the ranks of
# tokens you watch. **What to look at:** " Paris" sits thousands of places down through the middle
# layers and only climbs to rank 1 in the last few: the answer is settled late.

# %%
preds, ranks, watch, lens = client.predict(run["run_id"], " Paris, London", -1, 3, api_name="/rankings")
w = lens["rankings_watch"]
for layer in range(0, len(w["ranks"]), 5):
    print(f"layer {layer + 1:>2}:", dict(zip(w["watch_tokens"], w["ranks"][layer])))
print("last layer:", dict(zip(w["watch_tokens"], w["ranks"][-1])))

# %% [markdown]
# **NMF.** Groups of FFN neurons that fire together, as factor activations over the run's tokens. The
# first token, the attention sink, is left out unless a fifth argument `skip_first=False` is given:
# its activations are so large that it would take a factor of its own.

# %%
html, plot, nmf = client.predict(run["run_id"], 3, 20, -1, api_name="/nmf")
for k, row in enumerate(nmf["factors"]):
    peak = max(range(len(row)), key=row.__getitem__)
    print(
        f"factor {k + 1}: strongest on {nmf['tokens'][peak]!r}; top neurons (layer, neuron):",
        [tuple(n[:2]) for n in nmf["top_neurons"][k][:3]],
    )

# %% [markdown]
# **Explain.** One explanation per factor, written here by the embedded SmolLM2 (`backend="local"` with
# that model named; an empty name means the app's default local explainer, the 1.5B Qwen when it is
# installed). With `backend="openai"` an OpenAI-compatible server writes them instead: the app's own
# server, or your `base_url` where the app's operator allows it, with your API key, used for that
# request only. Scoring (`score=True`) takes longer on a CPU.

# %%
html, scores, exp = client.predict(
    run["run_id"],
    2,  # n_components
    20,  # from_layer
    -1,  # to_layer
    "local",  # backend
    "",  # base_url
    "smollm2-135m-instruct",  # llm_model
    "",  # api_key
    False,  # score
    2,  # n_examples
    "bm25",  # retriever
    "",  # held_out
    api_name="/explain",
)
for e in exp["explanations"]:
    print(f"factor {e['factor'] + 1}: {e['text']}")

# %% [markdown]
# **Errors.** Bad requests come back as errors that say what to change, and the app keeps serving:

# %%
try:
    client.predict("", "smollm2-135m-instruct", 4, api_name="/generate")
except AppError as err:
    print("AppError:", err)
demo.close()

# %% [markdown]
# That is the whole tour. The repository's README lists the same calls, and `space/README.md` is the
# card of the published Space.
