"""Write the tutorial notebooks from the cells defined below, then execute them in place so outputs are saved.

The notebooks are generated, never edited by hand: change a cell here and rerun this script, so every notebook
stays reviewable as Python source and reproducible from it. Everything runs offline on the embedded models.

    .venv/bin/python notebooks/build.py                 # write and execute every notebook
    .venv/bin/python notebooks/build.py 03 05           # only the notebooks whose names start with these
    .venv/bin/python notebooks/build.py --no-execute    # write the cells only (outputs cleared)

tests/test_notebooks.py executes every notebooks/*.ipynb (built here or not) and fails on any cell error.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
CELL_TIMEOUT_S = 900
# Quiet, offline kernels: no hub, no telemetry, no tokenizers fork warnings.
KERNEL_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
}

Cell = tuple[str, str]  # ("markdown" | "code", source)


def md(text: str) -> Cell:
    """A markdown cell (source dedented, so cells read naturally in this file)."""
    return ("markdown", textwrap.dedent(text).strip())


def code(text: str) -> Cell:
    """A code cell."""
    return ("code", textwrap.dedent(text).strip())


SETUP_SMOLLM = code(
    """
    %matplotlib inline
    import ecco_sdk

    lm = ecco_sdk.from_pretrained("smollm2-135m-instruct", verbose=False)
    lm
    """
)

SETUP_NOTE = md(
    """
    `from_pretrained` loads the embedded SmolLM2-135M-Instruct (30 layers of 1,536 FFN neurons) without any
    network access; `verbose=False` hides the progress bars. `%matplotlib inline` lets Jupyter draw the
    matplotlib figures that the `.plot()` methods return.
    """
)


# ----------------------------------------------------------------------------------------------------- notebooks


def candidates() -> list[Cell]:
    """01: generated tokens and the candidates the model weighed at every step."""
    return [
        md(
            """
            # 1. Predicted tokens and candidate probabilities

            A language model writes one token at a time. At every step it gives a probability to each of the
            49,152 tokens in SmolLM2's vocabulary, and the generation loop picks one. ecco_sdk records the top
            candidates of every step, so you can see what else the model considered and how sure it was.
            """
        ),
        SETUP_SMOLLM,
        SETUP_NOTE,
        code(
            """
            out = lm.generate("The capital of France is", generate=8)
            out
            """
        ),
        md(
            """
            `generate` returns an `OutputSeq`: the tokens, the candidates of each step, and what was captured
            inside the model (each layer's hidden states and FFN activations, with their shapes in the repr).
            The other notebooks analyse exactly these arrays.

            `out.view()` shows the generated text with one card per step. **What to look at:** steps where one
            candidate takes nearly all the probability (the model is sure) against steps where the probability
            is spread over many tokens (the model hesitates, and sampling could take the text elsewhere).
            """
        ),
        code("out.view()"),
        md("The numbers behind the view are plain Python data: `out.candidates[step]` lists `Candidate` tuples."),
        code(
            """
            for token, step in zip(out.output_tokens, out.candidates):
                top3 = ", ".join(f"{c.token!r} {c.prob:.1%}" for c in step[:3])
                print(f"{token!r:>10}  <-  {top3}")
            """
        ),
        md(
            """
            " Paris" comes with about 77% probability; " London" is in the list too, far behind. After the
            answer the model is much less sure what to write next.

            **Sampling.** With `do_sample=True` the loop draws a token instead of taking the most likely one
            (`seed` makes it repeatable). The candidates always describe the model's own distribution at
            temperature 1, before temperature, top-k or top-p reshape it, so greedy and sampled runs can be
            compared step by step.
            """
        ),
        code(
            """
            sampled = lm.generate("The capital of France is", generate=8, do_sample=True, temperature=1.2, seed=3)
            print("greedy: ", repr(out.output_text))
            print("sampled:", repr(sampled.output_text))
            for token, step in zip(sampled.output_tokens, sampled.candidates):
                listed = [c.token for c in step]
                where = f"candidate #{listed.index(token) + 1}" if token in listed else "outside the top 10"
                print(f"{token!r:>12}  {where}")
            """
        ),
        md(
            """
            Once the sampled text leaves the likely path, later steps pick tokens from further down the list,
            and the text drifts.

            **Saving a run.** `out.save(path)` writes one file (JSON metadata and compressed arrays);
            `ecco_sdk.load(path, lm=lm)` reads it back with the model reattached for analyses that need weights.
            """
        ),
        code(
            """
            import tempfile
            from pathlib import Path

            path = out.save(Path(tempfile.mkdtemp()) / "capital.ecco")
            again = ecco_sdk.load(path, lm=lm)
            print(again.output_text == out.output_text, f"{path.stat().st_size / 1e6:.1f} MB")
            """
        ),
        md(
            """
            Next: [02-saliency](02-saliency.ipynb) asks which input tokens each of these predictions depended on.
            """
        ),
    ]


def saliency() -> list[Cell]:
    """02: input saliency (integrated gradients), minimal and detailed views."""
    return [
        md(
            """
            # 2. Input saliency: which input tokens made the model say that?

            Attribution (saliency) methods give each earlier token a share of the credit for one output token.
            ecco_sdk computes them for every generated token at once. The default, **integrated gradients**
            (IG), adds up gradients along a straight path from a baseline (all-zero embeddings) to the real
            input. `n_steps` sets how many points of that path are used: the default 50 is more accurate, 16
            keeps this notebook quick.
            """
        ),
        SETUP_SMOLLM,
        code(
            """
            out = lm.generate("The Eiffel Tower is located in the city of", generate=2, attribution=["ig"], n_steps=16)
            out.output_tokens
            """
        ),
        md(
            """
            **Minimal view.** Each input token is shaded by its share of the credit for one output token
            (`target=0`, the first generated token, " Paris"). **What to look at:** the darkest shading sits on
            " Eiffel", the word that carries the fact, with " Tower" and " city" next, while "is", "located",
            "in" and "the" get little. The first token, "The", takes a share too: causal models lean on their
            first position whatever it holds (notebook 05 shows how hard).
            """
        ),
        code('out.primary_attributions("ig", target=0)'),
        md(
            """
            **Detailed view.** The same scores written as percentages under the tokens, for every generated
            token: hover over or click an underlined output token to switch which one is explained (the saved
            notebook shows the last one; the switching script runs in a live Jupyter session).
            """
        ),
        code('out.primary_attributions("ig", style="detailed")'),
        md(
            """
            The scores are plain arrays in `out.attributions["ig"]`. `scores()` is the original ecco's
            measure, one row per generated token (normalised to sum to 1, NaN where a position cannot
            influence the target); `word_scores` adds up the sub-word pieces of each word.
            """
        ),
        code(
            """
            import numpy as np

            attr = out.attributions["ig"]
            words, scores = attr.word_scores(out.tokens)
            for i in np.argsort(-np.nan_to_num(scores[0]))[:5]:  # the five words with most credit for " Paris"
                print(f"{words[i]!r:>12} {scores[0, i]:.0%}")
            """
        ),
        md(
            """
            **Is 16 steps enough?** IG has a check built in: the signed attributions should add up to the
            change in the target's probability between the baseline and the real input. `attr.delta` is the
            gap, per target. When it is not small next to the probability itself, raise `n_steps`. Below, the
            gap is small for " Paris" but large for the ",": 16 steps are too few for that token, and the
            default `n_steps=50` brings both gaps close to zero.
            """
        ),
        code(
            """
            for j, pos in enumerate(attr.target_positions):
                prob = out.candidates[j][0].prob
                print(f"{out.tokens[pos]!r}: probability {prob:.2f}, IG gap {attr.delta[j]:+.3f}")
            """
        ),
        md(
            """
            **Other methods.** `"saliency"` (the plain gradient), `"grad_x_input"` and `"ablation"` are
            cheaper and noisier. A method not computed at generation time is computed when first viewed. Here
            the plain gradient spreads its credit more evenly over the sentence than IG does.
            """
        ),
        code('out.primary_attributions("saliency", target=0)'),
        md(
            """
            To explain a continuation you choose (instead of one the model generated), use
            `lm.attribute(text, target=" Paris")`; adding `foil=" London"` attributes the *difference* between
            two candidates ("why Paris rather than London?"), stored as `out.attributions["ig:contrast"]`.

            Next: [03-layer-predictions](03-layer-predictions.ipynb) looks inside the model's layers.
            """
        ),
    ]


def layer_predictions() -> list[Cell]:
    """03: the logit lens on the Heathrow prompt, and what the final-norm fix changes."""
    return [
        md(
            """
            # 3. Does the model know where Heathrow Airport is? Layer predictions and rankings

            The model picks its answer after the last layer. But at which layer does the answer appear? The
            **logit lens** reads every layer's output as if it were the last one: the hidden state goes through
            the model's own final norm and output embedding, which gives a prediction per layer.
            """
        ),
        SETUP_SMOLLM,
        code(
            """
            out = lm.generate("Heathrow Airport is located in the city of", generate=3)
            out.view()
            """
        ),
        md(
            """
            The model answers " London", with about 44% probability. Now the top five predictions of each of
            the 30 layers, for the position of " London":
            """
        ),
        code(
            """
            lp = out.layer_predictions(topk=5)
            lp.plot()
            """
        ),
        md(
            """
            **What to look at.** Early and middle layers predict junk: generic continuations such as ",",
            " (" or "." that would fit after almost any word and say nothing about Heathrow. From layer 25 the
            guesses start to look like the beginnings of place names (" K", " D", " central"), and " London"
            appears only at layer 28, where it is already the top prediction. The data behind the figure:
            """
        ),
        code(
            """
            first = next(layer for layer, top in zip(lp.layers, lp.tokens) if top[0] == " London")
            print("first layer whose top prediction is ' London':", first, "of", lm.n_layers)
            for layer, top, probs in list(zip(lp.layers, lp.tokens, lp.probs))[-4:]:
                print(f"layer {layer}:", ", ".join(f"{t!r} {p:.0%}" for t, p in zip(top[:3], probs[:3])))
            """
        ),
        md(
            """
            **Rankings.** `out.rankings()` follows each generated token instead: its rank at every layer
            (1 = that layer's top choice). " London" sits thousands of places down until layer 23 and climbs
            to 1 in the last three layers, while the "." after it is among the top four at every layer:
            punctuation after a city name needs no knowledge of geography.
            """
        ),
        code(
            """
            ranks = out.rankings()
            ranks.plot()
            """
        ),
        md(
            """
            **The final-norm fix.** The original ecco projected each layer's hidden state straight through the
            output embedding and skipped the model's final norm. SmolLM2's final RMSNorm rescales every one of
            the 576 dimensions by a learned weight, so skipping it scrambles the logits. ecco_sdk applies the
            norm first (`lm.adapter.unembed`), and when a model loads it checks that unembedding the last
            layer reproduces the model's own logits (`lm.adapter.lens_checked`). The comparison, by hand:
            """
        ),
        code(
            """
            import torch

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
            """
        ),
        md(
            """
            Without the norm, even the last layer, which *is* the model's output, ranks " London" thousands of
            places down and predicts an unrelated token, and every earlier layer looks like noise. With it, the
            last layer agrees with the model and the earlier layers become readable.

            Next: [04-rankings-watch](04-rankings-watch.ipynb) compares two candidates layer by layer.
            """
        ),
    ]


def rankings_watch() -> list[Cell]:
    """04: is/are agreement, watched across layers."""
    return [
        md(
            """
            # 4. Comparing candidate tokens across layers: " is" or " are"?

            In "The keys to the cabinet ___" the verb must agree with "keys" (plural), although the nearest
            noun, "cabinet", is singular. `rankings_watch` follows a few chosen candidates through every layer
            at one position, so we can see where the model settles the agreement.
            """
        ),
        SETUP_SMOLLM,
        code(
            """
            out = lm.generate("The keys to the cabinet", generate=1)
            [(c.token, round(c.prob, 3)) for c in out.candidates[0][:4]]
            """
        ),
        md('The model\'s answer is " are". Now the rank of " is" and " are" at every layer (1 = top choice):'),
        code(
            """
            watch = out.rankings_watch([" is", " are"])
            watch.plot()
            """
        ),
        md(
            """
            **What to look at.** Up to layer 26, " is" ranks *above* " are" in every layer: the middle of the
            model leans towards the singular (or just the more common) verb. In the last three layers " are"
            jumps to the top (rank 1 or 2) while " is" falls back. The agreement is settled at the very end of
            the model.
            """
        ),
        code(
            """
            for layer, (r_is, r_are), (p_is, p_are) in list(zip(watch.layers, watch.ranks, watch.probs))[-5:]:
                print(f"layer {layer}: ' is' #{r_is} ({p_is:.1%})   ' are' #{r_are} ({p_are:.1%})")
            """
        ),
        md("The control: make the head noun singular and the attractor plural."),
        code(
            """
            control = lm.generate("The key to the cabinets", generate=1)
            print("answer:", repr(control.output_text))
            control.rankings_watch([" is", " are"]).plot()
            """
        ),
        md(
            """
            Now " is" wins in the last layers and " are" stays behind. In both sentences " is" leads through
            most of the middle layers, so those layers have not resolved the agreement yet; only the last
            layers tell the two sentences apart, which is where this small model settles number agreement.

            Watched tokens must be single tokens (note the leading space); token ids work too, and `position=`
            watches any position of the text, prompt included.

            Next: [05-nmf-causal](05-nmf-causal.ipynb) looks at neurons instead of predictions.
            """
        ),
    ]


def nmf_causal() -> list[Cell]:
    """05: NMF neuron factors on SmolLM2."""
    return [
        md(
            """
            # 5. Neuron factors (NMF) in a causal model

            Every FFN layer of SmolLM2 has 1,536 neurons; over 30 layers that is 46,080 numbers per token.
            Non-negative matrix factorization (NMF) compresses them into a few **factors**: groups of neurons
            that fire together, with a strength at each token. Reading where each factor fires tells you what
            the groups respond to.
            """
        ),
        SETUP_SMOLLM,
        code(
            """
            text = (
                "Shopping list: apples, pears, 3 lemons and 12 eggs. On Monday, March 3, Anna flew from Paris to "
                'Berlin; she said it was "wonderful". Then'
            )
            out = lm.generate(text, generate=8)
            out.activations.shape  # (layers, neurons, tokens)
            """
        ),
        code(
            """
            nmf = out.run_nmf(n_components=6)
            print(nmf)
            nmf.plot()
            """
        ),
        md(
            """
            **What to look at.** The first factor ("factor 1" in the plot, `nmf.factors[0]` in Python) is one
            huge spike on the very first token. Causal models pour
            enormous activations into the first position (it serves as an "attention sink"), far larger than
            anywhere else, so NMF spends a whole factor on it, and its low relative error mostly measures how
            well that one token is reproduced. Leave the first token out with `positions`:
            """
        ),
        code(
            """
            nmf = out.run_nmf(n_components=6, positions=slice(1, None))
            print(nmf)
            nmf.explore()
            """
        ),
        md(
            """
            Click a factor row to highlight its tokens (in a live notebook); the "All factors" line colours each
            token by its strongest factor. The view counts factors from 1; in Python they are numbered from 0.
            **What to notice:** the factors follow the role of a token in the sentence more than its spelling:
            the ends of sentences and clauses, list items (digits, commas and " and"), the prepositions of the
            journey (" from", " to"), the people (" she", " it", " Anna"), the quoted word, and the lone space
            tokens SmolLM2 writes before a digit. The same lists as text:
            """
        ),
        code(
            """
            def top_tokens(result, n=5):
                for k in range(result.n_components):
                    order = result.factors[k].argsort()[::-1][:n]
                    print(f"factor {k}:", "  ".join(repr(result.tokens[i]) for i in order))


            top_tokens(nmf)
            """
        ),
        md(
            """
            Each factor is a group of neurons: `top_neurons(k)` gives its strongest ones as
            (layer, neuron, weight). They sit in the last layers (28 and 29; FFN layers count from 0 here,
            whereas the logit lens of notebook 03 numbers block outputs 1-30), whose activations are the
            largest.
            """
        ),
        code("nmf.top_neurons(0, n=5)"),
        md(
            """
            **A layer range.** `from_layer`/`to_layer` (half-open, as in the original ecco) factorize only some
            layers. Because the last layers dominate the whole-model factors, the early layers are worth a
            separate look: there the groups follow what a token *is* (fruit and cities, days and months,
            punctuation) more than what it does in the sentence.
            """
        ),
        code(
            """
            early = out.run_nmf(n_components=6, from_layer=0, to_layer=6, positions=slice(1, None))
            top_tokens(early)
            early.explore()
            """
        ),
        md(
            """
            Next: [06-nmf-encoder](06-nmf-encoder.ipynb) does the same on a BERT-style encoder, across many
            texts at once; [07-explain](07-explain.ipynb) asks an LLM to put factors into words.
            """
        ),
    ]


def nmf_encoder() -> list[Cell]:
    """06: NMF factors of the MiniLM encoder, per text and fitted on a corpus."""
    return [
        md(
            """
            # 6. Neuron factors in a BERT-style encoder, one text and a corpus

            The original ecco's best-known factor: a group of BERT neurons that fires on commas. Here the
            embedded all-MiniLM-L6-v2 (a 6-layer BERT-style encoder) runs over a batch of texts; an encoder
            does not generate, so we call the model on the texts directly.
            """
        ),
        code(
            """
            %matplotlib inline
            import ecco_sdk

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
            """
        ),
        md(
            """
            `batch[i]` is the `OutputSeq` of text `i`, so everything from the causal notebooks works on it.
            Factors of one text:
            """
        ),
        code(
            """
            one = batch[1].run_nmf(n_components=4)
            print(batch[1].tokens)
            one.explore()
            """
        ),
        md(
            """
            **What to notice.** With only 16 tokens the four factors are already distinct: the plural "##s"
            pieces, the commas (and the " and" that ends the list), the verb with the full stop and `[SEP]`,
            and the special `[CLS]` token, which, like the first token of a causal model, has a factor to
            itself.

            **A corpus.** Factors of one text are numbered by how much they fire *in that text*, so factor 1 of
            one text has nothing to do with factor 1 of another. Fitting one NMF on the positions of many texts
            gives a `FactorModel` whose factors mean the same neurons everywhere.
            (`ecco_sdk.factors.fit_corpus_nmf(enc, texts)` does the capture and the fit in one call.)
            """
        ),
        code(
            """
            from ecco_sdk.factors import apply_factor_model, fit_factor_model

            model = fit_factor_model([seq.activations for seq in batch], n_components=6)
            print(model)

            for k in range(model.n_components):
                hits = []
                for seq in batch:
                    factors = model.transform(seq.activations, seq.tokens).factors[k]
                    hits += [(float(v), tok) for v, tok in zip(factors, seq.tokens)]
                top = [tok for _, tok in sorted(hits, reverse=True)[:8]]
                print(f"factor {k}:", " ".join(top))
            """
        ),
        md(
            """
            Across the corpus the factors split the tokens cleanly: one for the pronouns and reporting verbs
            ("said", "told", "she", "they"), one each for `[CLS]` and `[SEP]`, one for commas and " and", one
            for plural endings and the things in a list, one for numbers. Apply the model to a new text:
            factor numbers keep their meaning.
            """
        ),
        code(
            """
            new = apply_factor_model(model, enc, "Oranges, lemons, and limes, please. He said they would.")
            new.explore()
            """
        ),
        md(
            """
            The comma factor lights up on the new commas and on " and", the plural factor on "##s", and the
            pronoun/verb factor on "he said they would", without refitting.

            Next: [07-explain](07-explain.ipynb) asks an LLM to describe factors like these in words, and scores
            the descriptions.
            """
        ),
    ]


def explain() -> list[Cell]:
    """07: LLM explanations of factors with the local backend, and how to read their scores."""
    return [
        md(
            """
            # 7. Explaining factors with an LLM, and reading the scores

            Looking at highlighted tokens works for a handful of factors. For many, ecco_sdk asks an LLM to write
            a one-line explanation of each factor from its most active tokens (with worked examples from a
            built-in library), then **scores** each explanation by whether it predicts the factor on held-out
            text it has never seen.

            Here the explainer is the local backend, offline: the embedded Qwen2.5-Coder-1.5B-Instruct when it is
            installed (`make install` does), else the small SmolLM2-135M, whose explanations score near chance
            (each of its explanations then carries a note that says so). The same model also scores the
            explanations. This notebook is about the workflow and about reading the scores, which are what tell
            you whether an explanation is any good. `backend="openai:<model>"` points the same calls at any
            OpenAI-compatible server instead.
            """
        ),
        code(
            """
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
            """
        ),
        md(
            """
            A corpus-fitted factor model (notebook 06) with two factors, applied to a new sentence that has
            something of both: a list, and reported speech.
            """
        ),
        code(
            """
            sentence = "She said that apples, pears and figs are fruit."
            ((tokens, acts),) = without_specials(texts_activations(enc, [sentence]))
            nmf = model.transform(acts, tokens)
            nmf.explore()
            """
        ),
        md(
            """
            The first factor (shown as "Factor 1": the view counts from 1, Python from 0) fires on the list:
            commas, " and", the plural "##s"; the second on "she said that". Now one explanation per factor.
            `n_examples` worked examples are retrieved from the library (`retriever="bm25"` is lexical and
            needs no embeddings; the default, `"hybrid"`, adds MiniLM embeddings stored in Chroma), and the
            prompt is packed to at most `token_budget` tokens.
            """
        ),
        code(
            """
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
            """
        ),
        md(
            """
            Each `Explanation` keeps what produced it: `e.example_ids` names the library examples used,
            `e.messages` is the exact prompt and `e.raw` the model's unedited answer. An answer that nearly copies
            a worked example's explanation is asked again without that example; `e.copied_from` names the copied
            example and `e.notes` says what was done. This is the factor as the
            LLM saw it, each token followed by its activation on a 0-10 scale:
            """
        ),
        code('print(explanations[0].messages[-1]["content"])'),
        md(
            """
            **Scoring.** `score_explanations` applies the *same fitted factor model* to held-out texts (through
            `factor_fn`) and asks the LLM to use each explanation:

            * **simulation**: from the explanation alone, predict the factor's 0-10 activation at every
              held-out token; the score is the correlation with the real activations (1 = perfect, 0 = no
              relation);
            * **detection**: say whether a snippet contains what the explanation describes; the score is the
              balanced accuracy over snippets where the factor fires and where it is silent (0.5 = chance).

            Each explanation is scored next to two **baselines**, by the same LLM: a *random* explanation (one
            written for another factor) and *top-tokens* (just a list of the factor's strongest tokens). An
            explanation is worth something only where it beats both.
            """
        ),
        code(
            """
            held_out = ["Cats, dogs, birds and fish", "She said he told them"]  # one text per factor
            factor_fn = model.factor_fn(lambda texts: without_specials(texts_activations(enc, texts)))
            report = score_explanations(explanations, factor_fn, held_out, backend="local", per_class=1)
            print(report)
            """
        ),
        md(
            """
            **How to read the table.** One row per factor. For each method come the explanation's score, then
            the baselines' (`sim:random`, `sim:top-tokens`, `det:...`); "—" means a method could not be applied,
            and a `note` line says why. Read across a row: an explanation that does not beat its top-tokens
            baseline says nothing that the list of active tokens did not already say, and one that does not
            beat the random baseline says nothing about this factor at all. The two held-out texts were
            chosen so that each factor fires in one and stays silent in the other, which detection needs; with
            `per_class=1` it judges only two snippets, so its scores are 0, 0.5 or 1. Real use wants more
            held-out text (`ecco_sdk.explain.HELD_OUT_TEXTS` holds eight varied texts); `bench/explain.py`
            measures both local models that way. The same numbers as data:
            """
        ),
        code(
            """
            def fmt(value):
                return "—" if value is None else f"{value:.2f}"


            for f in report.factors:
                own, top = f.explanation.scores, f.baseline("top-tokens").scores
                print(f"factor {f.factor}: {f.explanation.text!r}")
                print(f"  simulation {fmt(own.simulation)} (top-tokens baseline {fmt(top.simulation)})")
                print(f"  detection {fmt(own.detection)} (top-tokens baseline {fmt(top.detection)})")
            """
        ),
        md(
            """
            The explanations can go back into the factor view:
            """
        ),
        code("nmf.explore(explanations=[e.text for e in explanations])"),
        md(
            """
            For one text end to end there is `ecco_sdk.explain.explain_text(lm, text, n_components=3)`, which the
            CLI (`ecco-sdk explain`) and the app use. It leaves out each text's first token (the attention sink
            of notebook 05) unless you pass `skip_first=0`. Next: [08-similarity](08-similarity.ipynb).
            """
        ),
    ]


def similarity() -> list[Cell]:
    """08: CKA similarity between the layers of one model."""
    return [
        md(
            """
            # 8. Representation similarity across layers (CKA)

            How much does each layer change what the model represents? **Centered kernel alignment** (CKA)
            compares two layers' activations over the same tokens and gives 1 when they hold the same
            information up to a rotation and scale, and near 0 when they are unrelated. Computing it for every
            pair of layers shows the model's stages.
            """
        ),
        SETUP_SMOLLM,
        code(
            """
            import numpy as np

            texts = [
                "Shopping list: apples, pears, 3 lemons and 12 eggs.",
                "On Monday, March 3, Anna flew from Paris to Berlin.",
                'She said it was "wonderful", and then she went home.',
                "def mean(values):\\n    return sum(values) / len(values)",
                "The keys to the cabinet are on the table by the door.",
            ]
            batch = lm(texts)
            # every text's first token is an outlier (an "attention sink", see notebook 05); leave it out
            acts = np.concatenate([seq.activations[:, :, 1:] for seq in batch], axis=-1)
            acts.shape  # (layers, neurons, tokens of all texts)
            """
        ),
        md(
            """
            CKA needs many tokens to be reliable, so the FFN activations of five texts are put side by side.
            `layer_similarity` compares every layer with every other (`method="cka"` by default; `"svcca"`,
            `"pwcca"` and `"cca"` also exist). For a single run, `out.layer_similarity()` does the same.
            """
        ),
        code(
            """
            from ecco_sdk.render import similarity_figure
            from ecco_sdk.similarity import layer_similarity

            sim = layer_similarity(acts, method="cka")
            similarity_figure(sim, [f"L{i}" for i in range(lm.n_layers)], title="Linear CKA between FFN layers")
            """
        ),
        md(
            """
            **What to look at.** First, the dark band along the diagonal: neighbouring layers are alike, so the
            representation drifts gradually rather than being rebuilt at every layer. Second, square blocks
            along the diagonal, the model's stages: roughly layers 3-7, 11-22 and 23-29 (FFN layers counted from
            0). Third, pale rows and columns: a few early layers (1, 2, 9 and 10) are very like *each other*
            and unlike everything else. Check the figure against the numbers:
            """
        ),
        code(
            """
            print("CKA of each layer with the next: median", np.median(np.diag(sim, k=1)).round(2))
            mean_to_others = (sim.sum(axis=1) - 1) / (lm.n_layers - 1)
            odd = sorted(np.argsort(mean_to_others)[:4].tolist())
            print("least like the rest:", odd, "with mean CKA", mean_to_others[odd].round(2))
            print("but like each other:")
            print(sim[np.ix_(odd, odd)].round(2))
            """
        ),
        md(
            """
            Keep in mind what linear CKA measures: it weighs tokens by the size of their activations, so layers
            whose activity is dominated by a few very large values on a few tokens look alike and unlike the
            rest (the first tokens were dropped for the same reason). `kernel="rbf"` and `debiased=True` are
            the other options from Kornblith et al. (2019); NMF restricted to those layers
            (`out.run_nmf(from_layer=9, to_layer=11)`, notebook 05) shows which tokens they respond to.

            That is the end of the SDK tour; [09-app-api](09-app-api.ipynb) calls the same analyses through the
            Gradio app's API with `gradio_client`.
            """
        ),
    ]


def app_api() -> list[Cell]:
    """09: the Gradio app's endpoints called from gradio_client, as a script or another service would."""
    return [
        md(
            """
            # 9. Calling the app's API with `gradio_client`

            Every tab of the ecco_sdk app (`space/app.py`, started by `make app` or published as a Hugging Face
            Space) is also an API endpoint: `/generate`, `/saliency`, `/rankings`, `/nmf` and `/explain`. Each
            returns the picture the tab shows (HTML) *and* the numbers behind it as plain JSON, so a script, a
            dashboard or another service can use the analyses without Python access to the model.

            This notebook starts the app inside this kernel on a free loopback port, so it runs offline. Against a
            running app or a Space, only the first line changes: `Client("http://127.0.0.1:7860/")` for
            `make app`, or `Client("OWNER/NAME")` for a Space id.
            """
        ),
        code(
            """
            import socket

            from gradio_client import Client

            from ecco_sdk.serving import load_app

            app = load_app()  # space/app.py, the file `make app` and the Space run
            with socket.socket() as s:  # a free port on loopback
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            demo = app.build_app()
            demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            print("serving", demo.ecco_server.models, "on port", port)
            """
        ),
        md(
            """
            `client.view_api()` prints every endpoint with its parameters, their types and defaults: the same
            names as the app's widgets, documented from the endpoint docstrings.
            """
        ),
        code('list(client.view_api(print_info=False, return_format="dict")["named_endpoints"])'),
        md(
            """
            **Generate.** The first call loads the model (a few seconds). It returns the candidates view and the
            run as JSON; the run's `run_id` lets the other endpoints analyse *this* generation without
            recomputing it.
            """
        ),
        code(
            """
            html, run = client.predict("The capital of France is", "smollm2-135m-instruct", 6, api_name="/generate")
            print(repr(run["output_text"]), "run_id:", run["run_id"])
            for step, cands in enumerate(run["candidates"][:3]):
                print(step, ", ".join(f"{c['token']!r} {c['prob']:.2f}" for c in cands[:3]))
            """
        ),
        md(
            """
            **Saliency.** Gradient-based attribution of the chosen output token (`-1` = the last generated one;
            the JSON holds every generated token). `scores_l2` is the original ecco's normalised score: one row
            per generated token, one value per earlier token, each row summing to 1.
            """
        ),
        code(
            """
            html, sal = client.predict(run["run_id"], "grad_x_input", "minimal", 0, 8, api_name="/saliency")
            first = sal["scores_l2"][0][: run["n_input_tokens"]]
            print("attribution of", repr(run["tokens"][run["n_input_tokens"]]), "over the prompt:")
            for tok, score in zip(run["tokens"], first):
                print(f"{tok!r:>10} {score:.2f}")
            """
        ),
        md(
            """
            **Layer rankings.** The logit lens: the rank of every generated token at every layer, and the ranks of
            tokens you watch. **What to look at:** " Paris" sits thousands of places down through the middle
            layers and only climbs to rank 1 in the last few: the answer is settled late.
            """
        ),
        code(
            """
            preds, ranks, watch, lens = client.predict(run["run_id"], " Paris, London", -1, 3, api_name="/rankings")
            w = lens["rankings_watch"]
            for layer in range(0, len(w["ranks"]), 5):
                print(f"layer {layer + 1:>2}:", dict(zip(w["watch_tokens"], w["ranks"][layer])))
            print("last layer:", dict(zip(w["watch_tokens"], w["ranks"][-1])))
            """
        ),
        md(
            """
            **NMF.** Groups of FFN neurons that fire together, as factor activations over the run's tokens. The
            first token, the attention sink, is left out unless a fifth argument `skip_first=False` is given:
            its activations are so large that it would take a factor of its own.
            """
        ),
        code(
            """
            html, plot, nmf = client.predict(run["run_id"], 3, 20, -1, api_name="/nmf")
            for k, row in enumerate(nmf["factors"]):
                peak = max(range(len(row)), key=row.__getitem__)
                print(f"factor {k + 1}: strongest on {nmf['tokens'][peak]!r}; top neurons (layer, neuron):",
                      [tuple(n[:2]) for n in nmf["top_neurons"][k][:3]])
            """
        ),
        md(
            """
            **Explain.** One explanation per factor, written here by the embedded SmolLM2 (`backend="local"` with
            that model named; an empty name means the app's default local explainer, the 1.5B Qwen when it is
            installed). With `backend="openai"` an OpenAI-compatible server writes them instead: the app's own
            server, or your `base_url` where the app's operator allows it, with your API key, used for that
            request only. Scoring (`score=True`) takes longer on a CPU.
            """
        ),
        code(
            """
            html, scores, exp = client.predict(
                run["run_id"], 2, 20, -1, "local", "", "smollm2-135m-instruct", "", False, 2, "bm25", "",
                api_name="/explain",
            )
            for e in exp["explanations"]:
                print(f"factor {e['factor'] + 1}: {e['text']}")
            """
        ),
        md(
            """
            **Errors.** Bad requests come back as errors that say what to change, and the app keeps serving:
            """
        ),
        code(
            """
            from gradio_client.exceptions import AppError

            try:
                client.predict("", "smollm2-135m-instruct", 4, api_name="/generate")
            except AppError as err:
                print("AppError:", err)
            demo.close()
            """
        ),
        md(
            """
            That is the whole tour. The repository's README lists the same calls, and `space/README.md` is the
            card of the published Space.
            """
        ),
    ]


NOTEBOOKS: dict[str, Callable[[], list[Cell]]] = {
    "01-candidates": candidates,
    "02-saliency": saliency,
    "03-layer-predictions": layer_predictions,
    "04-rankings-watch": rankings_watch,
    "05-nmf-causal": nmf_causal,
    "06-nmf-encoder": nmf_encoder,
    "07-explain": explain,
    "08-similarity": similarity,
    "09-app-api": app_api,
}


# ------------------------------------------------------------------------------------------------------- build


def make_notebook(stem: str, cells: list[Cell]) -> nbformat.NotebookNode:
    """An nbformat notebook with stable cell ids (so rebuilding changes only what changed)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNEL)
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, source) in enumerate(cells):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(make(source, id=f"{stem[:2]}-{i:02d}"))
    return nb


def execute(
    nb: nbformat.NotebookNode, cwd: Path, kernel_name: str = KERNEL["name"], timeout: int = CELL_TIMEOUT_S
) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel, in `cwd`; a cell error raises nbclient's CellExecutionError.

    The default "python3" kernel started from this interpreter runs this interpreter (jupyter_client swaps a
    kernelspec's bare "python" for sys.executable), so run the script with the project's .venv/bin/python.
    """
    from nbclient import NotebookClient

    for key, value in KERNEL_ENV.items():
        os.environ.setdefault(key, value)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name=kernel_name, resources={"metadata": {"path": str(cwd)}}, record_timing=False
    )
    client.execute()
    return nb


def build(stem: str, run: bool = True) -> Path:
    """Write one notebook from its cells, executed with outputs unless `run` is False."""
    nb = make_notebook(stem, NOTEBOOKS[stem]())
    if run:
        execute(nb, HERE)
    path = HERE / f"{stem}.ipynb"
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: build the selected notebooks and report the time and size of each."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("only", nargs="*", help="build only notebooks whose names start with these (e.g. 03)")
    parser.add_argument("--no-execute", action="store_true", help="write the cells without running them")
    args = parser.parse_args(argv)
    stems = [s for s in NOTEBOOKS if not args.only or any(s.startswith(p) for p in args.only)]
    if not stems:
        parser.error(f"no notebook matches {args.only}; known: {', '.join(NOTEBOOKS)}")
    for stem in stems:
        start = time.perf_counter()
        path = build(stem, run=not args.no_execute)
        print(f"{path.name}: {time.perf_counter() - start:.0f} s, {path.stat().st_size / 1024:.0f} kB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
