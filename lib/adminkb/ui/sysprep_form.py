"""The sysprep.inf generator as an ipywidgets form, with a static HTML form for exported runbooks.

Each field fills one value of `adminkb.imaging.SysprepForm`. The computer name is random (`*`),
one fixed name, or a pattern (a prefix and a number range) that gives one name a machine and so
one sysprep.inf a machine. Every change regenerates the answer file and lints it, so the view
always shows the file for the first machine, its lint result, or the error in the form's values.
The preview hides the product key and the passwords, because exported pages travel to
colleagues; the files written by `write` contain them.
"""

from __future__ import annotations

import logging
import os
import re
from html import escape
from pathlib import Path

import ipywidgets as widgets
from ipywidgets.widgets.widget_bool import CheckboxStyle
from ipywidgets.widgets.widget_description import DescriptionStyle
from ipywidgets.widgets.widget_string import TextStyle

from adminkb.errors import AdminKbError, InputError, os_error_text
from adminkb.i18n import message
from adminkb.imaging.computer_names import MAX_DIGITS, ComputerNamePattern, generate_sysprep_files, write_sysprep_files
from adminkb.imaging.sysprep import LintResult, lint_text, mask_product_key
from adminkb.imaging.sysprep_form import SysprepForm, field_label, generate_sysprep, write_sysprep
from adminkb.imaging.sysprep_reference import MULTIPROCESSOR_HAL_IDS, TIME_ZONES, UNIPROCESSOR_HAL_IDS
from adminkb.ui.tables import lint_table, names_table

log = logging.getLogger("adminkb.ui.sysprep_form")

CRLF = "\r\n"
RANDOM, FIXED, PATTERN = "random", "fixed", "pattern"
WORKGROUP, DOMAIN = "workgroup", "domain"
NO_HAL_UPDATE = ""
# The largest number the range fields accept: the most that MAX_DIGITS digits can write.
MAX_NUMBER = 10 ** MAX_DIGITS - 1
_SECRET_LINE = re.compile(r"^(\s*(?:AdminPassword|DomainAdminPassword)\s*=\s*)(.*)$", re.IGNORECASE | re.MULTILINE)
_KEY_LINE = re.compile(r'^(\s*ProductKey\s*=\s*")([^"]*)(")', re.IGNORECASE | re.MULTILINE)


class SysprepFormWidget(widgets.VBox):
    """A form for the sysprep.inf generator that shows the generated file and its lint result after every change."""

    def __init__(self, form: SysprepForm, *, pattern: ComputerNamePattern | None = None,
                 output_dir: str | os.PathLike[str] | None = None) -> None:
        self.output_dir = Path(output_dir) if output_dir else None
        self._texts: dict[str, str] = {}
        self._names: list[str] = []
        self._lint: LintResult | None = None
        self._error: str | None = None
        self._inputs: list[widgets.Widget] = []
        # Inputs share their layout and style objects, so a stored notebook contains one widget model
        # for each instead of one an input.
        self._layout = widgets.Layout()
        self._styles = {"text": TextStyle(description_width="initial"),
                        "description": DescriptionStyle(description_width="initial"), "checkbox": CheckboxStyle()}

        self.org_name = self._text("org_name", form.org_name)
        self.full_name = self._text("full_name", form.full_name)
        self.product_key = self._text("product_key", form.product_key, placeholder="XXXXX-XXXXX-XXXXX-XXXXX-XXXXX")
        random_name = form.computer_name.strip() == "*"
        if pattern is not None:
            mode = PATTERN
        elif random_name:
            mode = RANDOM
        else:
            mode = FIXED
        self.name_mode = self._watch(widgets.RadioButtons(
            options=[(message(f"ui.sysprep.name_{choice}"), choice) for choice in (RANDOM, FIXED, PATTERN)],
            value=mode,
            description=field_label("computer_name"), layout=self._layout, style=self._styles["description"]))
        self.computer_name = self._text("computer_name", "" if random_name else form.computer_name)
        self.prefix = self._watch(widgets.Text(value=pattern.prefix if pattern else "", placeholder="TPE-ACC-",
                                               description=message("ui.sysprep.prefix"), continuous_update=False,
                                               layout=self._layout, style=self._styles["text"]))
        self.first = self._number("first", pattern.first if pattern else 1, 0, MAX_NUMBER)
        self.last = self._number("last", pattern.last if pattern else 1, 0, MAX_NUMBER)
        self.digits = self._number("digits", pattern.digits if pattern else 2, 1, MAX_DIGITS)
        zones = sorted(TIME_ZONES) + ([form.time_zone] if form.time_zone not in TIME_ZONES else [])
        self.time_zone = self._watch(widgets.Dropdown(options=zones, value=form.time_zone,
                                                      description=field_label("time_zone"), layout=self._layout,
                                                      style=self._styles["description"]))
        self.join_mode = self._watch(widgets.RadioButtons(
            options=[(field_label(WORKGROUP), WORKGROUP), (field_label(DOMAIN), DOMAIN)],
            value=DOMAIN if form.domain else WORKGROUP, description=message("ui.sysprep.join"),
            layout=self._layout, style=self._styles["description"]))
        self.workgroup = self._text(WORKGROUP, form.workgroup or "")
        self.domain = self._text(DOMAIN, form.domain or "")
        self.domain_admin = self._text("domain_admin", form.domain_admin or "")
        self.domain_admin_password = self._watch(widgets.Password(
            value=form.domain_admin_password or "", description=field_label("domain_admin_password"),
            layout=self._layout, style=self._styles["text"]))
        self.admin_password = self._watch(widgets.Password(
            value="" if form.admin_password == "*" else form.admin_password, description=field_label("admin_password"),
            placeholder=message("ui.sysprep.blank_password"), layout=self._layout, style=self._styles["text"]))
        self.traditional_chinese = self._check("traditional_chinese", form.traditional_chinese)
        self.input_locales = self._text("input_locales", form.input_locales)
        self.install_files_path = self._text("install_files_path", form.install_files_path)
        self.oem_skip_eula = self._check("oem_skip_eula", form.oem_skip_eula)
        self.oem_skip_welcome = self._check("oem_skip_welcome", form.oem_skip_welcome)
        self.oem_skip_regional = self._check("oem_skip_regional", form.oem_skip_regional)
        self.extend_oem_partition = self._check("extend_oem_partition", form.extend_oem_partition)
        self.keep_page_file = self._check("keep_page_file", form.keep_page_file)
        self.update_installed_drivers = self._check("update_installed_drivers", form.update_installed_drivers)
        self.oem_pnp_drivers_path = self._text("oem_pnp_drivers_path", form.oem_pnp_drivers_path or "")
        self.build_mass_storage_section = self._check("build_mass_storage_section", form.build_mass_storage_section)
        # ipywidgets reads a None value as "nothing selected", so "" stands for no HAL line.
        hal_options: list[tuple[str, object]] = [(message("ui.sysprep.no_hal_update"), NO_HAL_UPDATE)]
        hal_options += [(f"UpdateUPHAL = {hal_id}", ("UpdateUPHAL", hal_id)) for hal_id in UNIPROCESSOR_HAL_IDS]
        hal_options += [(f"UpdateHAL = {hal_id}", ("UpdateHAL", hal_id)) for hal_id in MULTIPROCESSOR_HAL_IDS]
        if form.hal_update is not None and form.hal_update not in [value for _, value in hal_options]:
            hal_options.append((" = ".join(form.hal_update), form.hal_update))
        self.hal_update = self._watch(widgets.Dropdown(options=hal_options, value=form.hal_update or NO_HAL_UPDATE,
                                                       description=field_label("hal_update"),
                                                       layout=self._layout, style=self._styles["description"]))

        self.fixed_box = widgets.VBox([self.computer_name])
        self.pattern_box = widgets.VBox([self.prefix, self.first, self.last, self.digits])
        self.workgroup_box = widgets.VBox([self.workgroup])
        self.domain_box = widgets.VBox([self.domain, self.domain_admin, self.domain_admin_password])
        self.result = widgets.HTML()
        self.message = widgets.HTML()
        self.write_button = widgets.Button(description=message("ui.sysprep.write"), icon="save",
                                           disabled=self.output_dir is None)
        self.write_button.on_click(lambda _button: self._write_clicked())
        super().__init__([
            self._heading("identity"), self.org_name, self.full_name, self.product_key,
            self._heading("computer_name"), self.name_mode, self.fixed_box, self.pattern_box,
            self._heading("network"), self.time_zone, self.join_mode, self.workgroup_box, self.domain_box,
            self._heading("regional"), self.traditional_chinese, self.input_locales, self.install_files_path,
            self._heading("mini_setup"), self.admin_password, self.oem_skip_eula, self.oem_skip_welcome,
            self.oem_skip_regional, self.extend_oem_partition, self.keep_page_file,
            self.update_installed_drivers, self.oem_pnp_drivers_path, self.build_mass_storage_section,
            self.hal_update,
            widgets.HBox([self.write_button, self.message]), self.result,
        ])
        self.refresh()

    # Building.

    def _watch(self, widget: widgets.Widget) -> widgets.Widget:
        widget.observe(lambda _change: self.refresh(), names="value")
        self._inputs.append(widget)
        return widget

    def _text(self, name: str, value: str, placeholder: str = "") -> widgets.Text:
        return self._watch(widgets.Text(value=value, placeholder=placeholder, description=field_label(name),
                                        continuous_update=False, layout=self._layout, style=self._styles["text"]))

    def _number(self, name: str, value: int, low: int, high: int) -> widgets.BoundedIntText:
        return self._watch(widgets.BoundedIntText(value=value, min=low, max=high,
                                                  description=message(f"ui.sysprep.{name}"),
                                                  layout=self._layout, style=self._styles["description"]))

    def _check(self, name: str, value: bool) -> widgets.Checkbox:
        return self._watch(widgets.Checkbox(value=value, description=field_label(name), indent=False,
                                            layout=self._layout, style=self._styles["checkbox"]))

    @staticmethod
    def _heading(name: str) -> widgets.HTML:
        return widgets.HTML(f"<b>{escape(message(f'ui.sysprep.section.{name}'))}</b>")

    # The form's values.

    def form_data(self) -> tuple[SysprepForm, list[str]]:
        """Return the form and the computer names it gives. Raises InputError for an unusable value.

        The names are empty for a random name, one name for a fixed name, and one a machine
        for a pattern, where the returned form carries the first name.
        """
        names: list[str] = []
        computer_name = "*"
        if self.name_mode.value == FIXED:
            computer_name = self.computer_name.value
            names = [computer_name.strip()]
        elif self.name_mode.value == PATTERN:
            names = ComputerNamePattern(self.prefix.value, self.first.value, self.last.value,
                                        self.digits.value).names()
            computer_name = names[0]
        domain_mode = self.join_mode.value == DOMAIN
        form = SysprepForm(
            org_name=self.org_name.value, full_name=self.full_name.value, product_key=self.product_key.value,
            computer_name=computer_name, time_zone=self.time_zone.value,
            workgroup=None if domain_mode else self.workgroup.value,
            domain=self.domain.value if domain_mode else None,
            domain_admin=(self.domain_admin.value or None) if domain_mode else None,
            domain_admin_password=(self.domain_admin_password.value or None) if domain_mode else None,
            admin_password=self.admin_password.value or "*",
            traditional_chinese=self.traditional_chinese.value, input_locales=self.input_locales.value,
            install_files_path=self.install_files_path.value, oem_skip_eula=self.oem_skip_eula.value,
            oem_skip_welcome=self.oem_skip_welcome.value, oem_skip_regional=self.oem_skip_regional.value,
            extend_oem_partition=self.extend_oem_partition.value, keep_page_file=self.keep_page_file.value,
            update_installed_drivers=self.update_installed_drivers.value,
            oem_pnp_drivers_path=self.oem_pnp_drivers_path.value or None,
            build_mass_storage_section=self.build_mass_storage_section.value,
            hal_update=self.hal_update.value or None)
        return form, names

    def files(self) -> dict[str, str]:
        """Return the generated files by computer name ("*" for a random name). Raises InputError for a bad value."""
        form, names = self.form_data()
        if self.name_mode.value == PATTERN:
            return generate_sysprep_files(form, names)
        return {form.computer_name.strip(): generate_sysprep(form)}

    def text(self) -> str:
        """Return the sysprep.inf of the first machine. Raises InputError for a bad value."""
        return next(iter(self.files().values()))

    def write(self, folder: str | os.PathLike[str] | None = None) -> list[Path]:
        """Write the answer files and return their paths.

        A pattern writes `<folder>/<name>/sysprep.inf` for each machine, otherwise the one file is
        `<folder>/sysprep.inf`. `folder` defaults to the widget's output folder.
        """
        target = Path(folder) if folder is not None else self.output_dir
        if target is None:
            raise InputError("ui.sysprep.no_folder", next_key="ui.sysprep.no_folder_next")
        form, names = self.form_data()
        if self.name_mode.value == PATTERN:
            return write_sysprep_files(form, names, target)
        target.mkdir(parents=True, exist_ok=True)
        return [write_sysprep(form, target / "sysprep.inf")]

    # The view.

    def refresh(self) -> None:
        """Show or hide the fields of the chosen modes, then regenerate and lint the files."""
        self.fixed_box.layout.display = "" if self.name_mode.value == FIXED else "none"
        self.pattern_box.layout.display = "" if self.name_mode.value == PATTERN else "none"
        self.workgroup_box.layout.display = "none" if self.join_mode.value == DOMAIN else ""
        self.domain_box.layout.display = "" if self.join_mode.value == DOMAIN else "none"
        try:
            _form, self._names = self.form_data()
            self._texts = self.files()
        except InputError as error:
            self._texts, self._lint, self._error = {}, None, str(error)
        else:
            self._lint = lint_text(next(iter(self._texts.values())))
            self._error = None
        self.result.value = self.result_html()

    def summary_text(self) -> str:
        """Return one line: the error, or how many files there are and whether the first lints clean."""
        if self._error is not None:
            return message("ui.sysprep.summary_error", error=self._error)
        assert self._lint is not None
        lint = (message("ui.table.no_findings") if self._lint.clean
                else message("ui.sysprep.findings", count=len(self._lint.findings)))
        if self.name_mode.value == PATTERN:
            return message("ui.sysprep.summary_pattern", count=len(self._names), first=self._names[0],
                           last=self._names[-1], lint=lint)
        return message("ui.sysprep.summary_one", name=next(iter(self._texts)), lint=lint)

    def result_html(self) -> str:
        """Render the error, or the names, the first file (secrets hidden) and its lint result, as HTML."""
        if self._error is not None:
            lines = "<br>".join(escape(line) for line in self._error.splitlines())
            return f"<p style=\"color:#a40e26\">{lines}</p>"
        assert self._lint is not None
        parts = [f"<p><b>{escape(self.summary_text())}</b></p>"]
        if self.name_mode.value == PATTERN:
            parts.append(f"<p>{escape(message('ui.sysprep.per_machine'))}</p>")
            parts.append(names_table(self._names)._repr_html_())
        name, text = next(iter(self._texts.items()))
        parts.append(f"<p>{escape(message('ui.sysprep.preview', name=name))}</p>")
        parts.append(f"<pre>{escape(hide_secrets(text.replace(CRLF, chr(10))))}</pre>")
        parts.append(f"<p>{escape(message('ui.sysprep.lint_heading'))}</p>")
        parts.append(lint_table(self._lint)._repr_html_())
        return "\n".join(parts)

    def form_html(self) -> str:
        """Render the form's values as a static table (secrets hidden), for pages without widgets."""
        rows = []
        for widget in self._inputs:
            if isinstance(widget, widgets.Password):
                value = message("ui.sysprep.password_set") if widget.value else ""
            elif widget is self.product_key:
                value = mask_product_key(widget.value.strip())
            elif isinstance(widget, widgets.Checkbox):
                value = message("ui.sysprep.yes") if widget.value else message("ui.sysprep.no")
            elif isinstance(widget, (widgets.RadioButtons, widgets.Dropdown)):
                value = widget.label
            else:
                value = str(widget.value)
            if self._shown(widget):
                rows.append(f"<tr><th>{escape(widget.description)}</th><td>{escape(value)}</td></tr>")
        return "<table>" + "".join(rows) + "</table>"

    def _shown(self, widget: widgets.Widget) -> bool:
        for box in (self.fixed_box, self.pattern_box, self.workgroup_box, self.domain_box):
            if widget in box.children:
                return box.layout.display != "none"
        return True

    def _write_clicked(self) -> None:
        try:
            paths = self.write()
        except AdminKbError as error:
            self.message.value = f"<span style=\"color:#a40e26\">{escape(str(error))}</span>"
            return
        except OSError as error:
            log.warning("sysprep form: writing to %s failed: %s", self.output_dir, error)
            self.message.value = (f"<span style=\"color:#a40e26\">"
                                  f"{escape(message('ui.sysprep.write_failed', reason=os_error_text(error)))}</span>")
            return
        log.info("sysprep form: wrote %d files under %s", len(paths), self.output_dir)
        self.message.value = escape(message("ui.sysprep.written", count=len(paths), folder=self.output_dir))

    # Display.

    def __repr__(self) -> str:
        return self.summary_text()

    def _repr_mimebundle_(self, **kwargs: object) -> dict[str, object]:
        data = super()._repr_mimebundle_(**kwargs)
        data["text/plain"] = repr(self)
        data["text/html"] = f"<div class=\"adminkb-sysprep-form\">{self.form_html()}\n{self.result_html()}</div>"
        return data


def open_sysprep_form(form: SysprepForm, *, pattern: ComputerNamePattern | None = None,
                      output_dir: str | os.PathLike[str] | None = None) -> SysprepFormWidget:
    """Return the generator form filled from `form`, numbering computer names by `pattern` when given.

    `output_dir` is where the form's button writes the files; without it the button is disabled.
    """
    return SysprepFormWidget(form, pattern=pattern, output_dir=output_dir)


def hide_secrets(text: str) -> str:
    """Return answer-file text with the product key masked and the password values replaced by asterisks."""
    text = _KEY_LINE.sub(lambda match: match.group(1) + mask_product_key(match.group(2)) + match.group(3), text)
    return _SECRET_LINE.sub(lambda match: match.group(1) + ("*" if match.group(2).strip() == "*" else "********"),
                            text)
