"""adminkb.runbooks: the display setting that every runbook applies first."""

import pandas as pd

from adminkb.runbooks import show_full_cells


def test_show_full_cells_keeps_long_text():
    reply = "550 5.7.1 Client host [192.0.2.26] rejected: no matching reverse DNS for this address"
    frame = pd.DataFrame({"reply": [reply]})
    with pd.option_context("display.max_colwidth", 50):
        assert reply not in frame._repr_html_()
        show_full_cells()
        assert reply in frame._repr_html_()
        assert reply in repr(frame)
