"""OutputSeq's analysis methods return the right visuals, before and after a save/load round trip."""

from __future__ import annotations

import numpy as np
import pytest

import ecco_sdk
from ecco_sdk import InputError
from ecco_sdk.render import Visual


@pytest.fixture(scope="module")
def gpt2(tiny_model_dir):
    return ecco_sdk.from_pretrained(tiny_model_dir("gpt2"), activations=True, verbose=False)


@pytest.fixture(scope="module")
def run(gpt2):
    return gpt2.generate("one two three", generate=3, attribution=["ig", "saliency"], stop_at_eos=False)


@pytest.mark.parametrize("style", ["minimal", "detailed"])
def test_primary_attributions_is_a_saliency_visual_of_the_run(run, style):
    v = run.primary_attributions("ig", style=style)
    assert isinstance(v, Visual) and v.kind == "saliency"
    assert "<script" not in v.static_html
    # every input token of the run is shown in the view
    shown = v.static_html
    for tok in run.input_tokens:
        assert tok.strip() in shown


def test_original_method_names_and_ignore_tokens(run):
    a = run.primary_attributions("integrated_gradients").static_html
    b = run.primary_attributions("ig").static_html
    assert len(a) == len(b)
    with pytest.raises(InputError, match="ignore_tokens position 99"):
        run.primary_attributions("ig", ignore_tokens=[99])
    with pytest.raises(InputError, match="style"):
        run.primary_attributions("ig", style="fancy")
    with pytest.raises(InputError):
        run.primary_attributions("no-such-method")


def test_missing_attribution_is_computed_when_the_model_is_attached(gpt2, run, tmp_path):
    path = run.save(tmp_path / "run.ecco")
    loaded = ecco_sdk.load(path)
    np.testing.assert_allclose(loaded.attributions["ig"].raw, run.attributions["ig"].raw)
    assert isinstance(loaded.primary_attributions("saliency"), Visual)  # stored: no model needed
    with pytest.raises(InputError, match="attach the model"):
        loaded.primary_attributions("grad_x_input")
    loaded.attach(gpt2)
    assert isinstance(loaded.primary_attributions("grad_x_input", style="detailed"), Visual)
    assert "grad_x_input" in loaded.attributions


def test_sequence_view_and_lens_figures(run):
    seq = run.view()
    assert isinstance(seq, Visual) and all(t.strip() in seq.static_html for t in run.output_tokens if t.strip())
    ranks = run.rankings()
    assert ranks.ranks.shape[1] == len(run.generated_positions)
    fig = ranks.plot()
    assert fig.axes and "Rank" in fig.axes[0].get_title(loc="left")
    assert fig.axes[0].get_ylabel() == "layer"
