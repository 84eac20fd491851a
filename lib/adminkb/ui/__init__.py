"""Jupyter presentation: widgets with a static HTML form for exported runbooks.

`open_checklist` shows an image build's checklist as ipywidgets. `checklist_html` renders the same
saved state as plain HTML, which needs no widget manager and is what exported pages show.
`open_sysprep_form` shows the sysprep.inf generator as a form, with the generated file and its lint
result under it.
"""

from adminkb.ui.checklist_html import checklist_html
from adminkb.ui.checklist import LAB_STATE_DIR, ChecklistWidget, open_checklist
from adminkb.ui.sysprep_form import SysprepFormWidget, open_sysprep_form

__all__ = ["LAB_STATE_DIR", "ChecklistWidget", "SysprepFormWidget", "checklist_html", "open_checklist",
           "open_sysprep_form"]
