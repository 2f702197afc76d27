"""The mosaic's aggregate: rows, best heads and the figure, from synthetic per-model results."""

import matplotlib.pyplot as plt
import pytest

from induction_heads import mosaic as M

OK = {"status": "ok", "n_layers": 2, "n_heads": 3, "n_params": 1234,
      "induction": [[0.9, 0.0, 0.1], [0.2, 0.5, 0.45]], "previous_token": [[0.1, 0.8, 0.0], [0.0, 0.0, 0.3]]}
ONE_LAYER = {"status": "ok", "n_layers": 1, "n_heads": 2, "n_params": 10, "induction": [[0.3, 0.6]],
             "previous_token": [[0.2, 0.1]]}


def test_rows_search_induction_heads_in_layers_one_and_up_and_list_failures():
    """The best induction head of a multi-layer model is searched in layers 1+ (0.0's 0.9 is not
    it), as the head scores do; a 1-layer model searches its one layer; a failure keeps its reason."""
    failed = M.failure(OSError("download refused"))
    rows = M.mosaic_rows({"two": OK, "one": ONE_LAYER, "bad": failed}, threshold=0.4)
    assert rows[0] == ["two", 1234, "2 x 3", "1.1", 0.5, 2, 0.8, ""]
    assert rows[1] == ["one", 10, "1 x 2", "0.1", 0.6, 1, 0.2, ""]
    assert rows[2] == ["bad", "", "", "", None, None, None, "OSError: download refused"]


def test_best_is_the_argmax_at_or_after_the_first_layer():
    assert M.best(OK["induction"]) == ("0.0", 0.9)
    assert M.best(OK["induction"], first_layer=1) == ("1.1", 0.5)
    assert M.best(ONE_LAYER["induction"], first_layer=1) == ("0.1", 0.6)  # no layer 1: the whole model


def test_figure_has_one_panel_per_scored_model_on_one_scale():
    fig = M.mosaic_figure({"two": OK, "one": ONE_LAYER, "bad": M.failure(ValueError("x"))})
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert [im.get_array().shape for im in images] == [(2, 3), (1, 2)]
    assert all(im.get_clim() == (0.0, 1.0) for im in images)
    plt.close(fig)
    with pytest.raises(ValueError, match="no model"):
        M.mosaic_figure({"bad": M.failure(ValueError("x"))})
