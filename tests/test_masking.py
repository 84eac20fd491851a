"""Tests for adminkb.masking: which values are masked, which are kept, and consistency."""

from __future__ import annotations

import nbformat
import pytest

from adminkb.masking import Masker, mask_notebook, mask_text


def test_email_local_part_and_domain_masked():
    masked = mask_text("MAIL FROM:<alice@mail.example.com>")
    assert masked == "MAIL FROM:<user-1@host-1.invalid>"


def test_same_value_same_placeholder():
    masker = Masker()
    first = masker.mask("alice@example.com wrote to bob@example.net")
    second = masker.mask("reply from bob@example.net to alice@example.com")
    assert first == "user-1@host-1.invalid wrote to user-2@host-2.invalid"
    assert second == "reply from user-2@host-2.invalid to user-1@host-1.invalid"


def test_host_in_address_and_alone_agree():
    masker = Masker()
    masked = masker.mask("admin@mail.example.com; EHLO mail.example.com; MAIL.EXAMPLE.COM")
    assert masked == "user-1@host-1.invalid; EHLO host-1.invalid; host-1.invalid"


def test_fresh_masker_restarts_numbering():
    assert mask_text("relay.example.net") == "host-1.invalid"
    assert mask_text("smtp.example.com") == "host-1.invalid"


@pytest.mark.parametrize(("text", "expected"), [
    ("from [198.51.100.7]", "from [ipv4-1]"),
    ("connected to 203.0.113.5.", "connected to ipv4-1."),
    ("192.0.2.10:25", "ipv4-1:25"),
    ("peer 2001:db8::1 closed", "peer ipv6-1 closed"),
    ("link fe80::1%eth0", "link ipv6-1%eth0"),
    ("RCPT TO:<ops@[IPv6:2001:db8::2]>", "RCPT TO:<user-1@[IPv6:ipv6-1]>"),
    ("RCPT TO:<ops@[192.0.2.1]>", "RCPT TO:<user-1@[ipv4-1]>"),
])
def test_ip_addresses_masked(text, expected):
    assert mask_text(text) == expected


def test_ipv4_and_ipv6_numbered_apart():
    masker = Masker()
    assert masker.mask("192.0.2.1 2001:db8::5 192.0.2.2") == "ipv4-1 ipv6-1 ipv4-2"


def test_same_ipv6_in_two_spellings_agrees():
    masker = Masker()
    assert masker.mask("2001:db8:0:0::7 and 2001:DB8::7") == "ipv6-1 and ipv6-1"


@pytest.mark.parametrize("text", [
    "listening on 127.0.0.1:25 and 127.0.0.10",
    "bound to [::1]:2525 and 0.0.0.0 and ::",
    "localhost accepted the message",
    "see https://learn.microsoft.com/en-us/troubleshoot/ and www.rfc-editor.org",
    "README.md, sysprep.inf, termsrv.dll, adminkb.smtp.session, pd.DataFrame",
    "version 5.1.2600.5512 at 12:30:45",
    "an example.tw name has two labels under a country code",
])
def test_values_kept(text):
    assert mask_text(text) == text


def test_reply_code_prefix_not_part_of_host():
    masker = Masker()
    assert masker.mask("250-mail.example.com Hello") == "250-host-1.invalid Hello"


def test_country_code_host_with_three_labels_masked():
    assert mask_text("mail.example.com.tw") == "host-1.invalid"


def test_trailing_sentence_dot_kept():
    assert mask_text("Delivered to smtp.example.net.") == "Delivered to host-1.invalid."


def test_html_escaped_address_masked():
    masked = mask_text("<td>&lt;carol@example.net&gt;</td>")
    assert masked == "<td>&lt;user-1@host-1.invalid&gt;</td>"


def test_masked_text_unchanged_by_second_pass():
    masker = Masker()
    once = masker.mask("alice@mail.example.com from 192.0.2.8 and 2001:db8::3 via relay.example.net")
    assert masker.mask(once) == once
    assert Masker().mask(once) == once


def test_keep_hosts_keeps_subdomains():
    masker = Masker(keep_hosts=["example.org"])
    assert masker.mask("www.example.org and example.org") == "www.example.org and example.org"
    assert masker.mask("example.com") == "host-1.invalid"


def test_mapping_lists_every_value():
    masker = Masker()
    masker.mask("alice@example.com 192.0.2.4 2001:db8::9")
    assert masker.mapping() == {
        "alice": "user-1",
        "example.com": "host-1.invalid",
        "192.0.2.4": "ipv4-1",
        "2001:db8::9": "ipv6-1",
    }


def test_empty_text_returned_unchanged():
    assert mask_text("") == ""


def _sample_notebook() -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["widgets"] = {"state": {"server": "mail.example.com"}}
    notebook.cells = [
        nbformat.v4.new_markdown_cell("Ask postmaster@example.com before sending."),
        nbformat.v4.new_code_cell('SERVER = "mail.example.com"', outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="220 mail.example.com ESMTP\n"),
            nbformat.v4.new_output("execute_result", execution_count=1, data={
                "text/plain": "['192.0.2.1']",
                "text/html": "<b>ops@example.net</b>",
                "image/png": "iVBORw0KGgo=",
            }),
            nbformat.v4.new_output("error", ename="TimeoutError",
                                   evalue="192.0.2.1 timed out",
                                   traceback=["connect to mail.example.com failed"]),
        ]),
    ]
    return notebook


def test_notebook_code_and_outputs_masked():
    masked = mask_notebook(_sample_notebook())
    code = masked.cells[1]
    assert code.source == 'SERVER = "host-1.invalid"'
    assert code.outputs[0].text == "220 host-1.invalid ESMTP\n"
    assert code.outputs[1].data["text/plain"] == "['ipv4-1']"
    assert code.outputs[1].data["text/html"] == "<b>user-1@host-2.invalid</b>"
    assert code.outputs[2].evalue == "ipv4-1 timed out"
    assert code.outputs[2].traceback == ["connect to host-1.invalid failed"]


def test_notebook_images_dropped():
    masked = mask_notebook(_sample_notebook())
    assert "image/png" not in masked.cells[1].outputs[1].data


def _widget_state_notebook() -> nbformat.NotebookNode:
    """A notebook with widget state as nbclient saves it: a box with a label and an image."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell('SERVER = "mail.example.com"')]
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {
            "box": {"model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
                    "model_name": "HBoxModel",
                    "state": {"_model_name": "HBoxModel", "children": ["IPY_MODEL_label", "IPY_MODEL_image"],
                              "layout": "IPY_MODEL_layout"}},
            "label": {"model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
                      "model_name": "HTMLModel",
                      "state": {"_model_name": "HTMLModel", "value": "<b>ops@example.net</b> via 192.0.2.1",
                                "description": "mail.example.com"}},
            "image": {"model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
                      "model_name": "ImageModel",
                      "state": {"_model_name": "ImageModel", "format": "png"},
                      "buffers": [{"data": "iVBORw0KGgo=", "encoding": "base64", "path": ["value"]}]},
        },
        "version_major": 2, "version_minor": 0}}
    return notebook


def test_notebook_widget_state_masked():
    masked = mask_notebook(_widget_state_notebook())
    state = masked.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert masked.cells[0].source == 'SERVER = "host-1.invalid"'
    assert state["label"]["state"]["value"] == "<b>user-1@host-2.invalid</b> via ipv4-1"
    assert state["label"]["state"]["description"] == "host-1.invalid"


def test_notebook_widget_structure_kept():
    masked = mask_notebook(_widget_state_notebook())
    saved = masked.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
    assert saved["version_major"] == 2
    box = saved["state"]["box"]
    assert box["model_module"] == "@jupyter-widgets/controls"
    assert box["model_module_version"] == "2.0.0"
    assert box["state"]["_model_name"] == "HBoxModel"
    assert box["state"]["children"] == ["IPY_MODEL_label", "IPY_MODEL_image"]
    assert box["state"]["layout"] == "IPY_MODEL_layout"


def test_notebook_widget_buffers_dropped():
    masked = mask_notebook(_widget_state_notebook())
    image = masked.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]["image"]
    assert "buffers" not in image
    assert image["state"]["format"] == "png"


def test_notebook_markdown_kept_unless_asked():
    assert mask_notebook(_sample_notebook()).cells[0].source == "Ask postmaster@example.com before sending."
    masked = mask_notebook(_sample_notebook(), markdown=True)
    assert masked.cells[0].source == "Ask user-1@host-1.invalid before sending."


def test_notebook_original_left_unchanged():
    original = _sample_notebook()
    mask_notebook(original)
    assert original.cells[1].source == 'SERVER = "mail.example.com"'
    assert "image/png" in original.cells[1].outputs[1].data
    assert "widgets" in original.metadata


# --- Windows computer names: one label, masked by position or once the record reveals them -------

@pytest.mark.parametrize(("text", "expected"), [
    ("copy \\\\MAIL01\\share\\report.txt", "copy \\\\host-1.invalid\\share\\report.txt"),
    ("dir \\\\FILESRV\\c$\\logs", "dir \\\\host-1.invalid\\c$\\logs"),
    ("'\\\\\\\\MAIL01\\\\share'", "'\\\\\\\\host-1.invalid\\\\share'"),
    ("\\\\mail01.corp.example\\share", "\\\\host-1.invalid\\share"),
    ("\\\\192.0.2.5\\share", "\\\\ipv4-1\\share"),
])
def test_unc_host_masked(text, expected):
    assert mask_text(text) == expected


@pytest.mark.parametrize("text", ["\\\\?\\C:\\Windows", "\\\\.\\pipe\\spool", "\\\\localhost\\c$", "C:\\Temp\\new"])
def test_unc_without_host_kept(text):
    assert mask_text(text) == text


def test_banner_name_masked_everywhere():
    transcript = ("220 MAIL01 Microsoft ESMTP MAIL Service, Version: 6.0.3790.3959 ready at  Mon, 2 Mar 2026\n"
                  "250-MAIL01 Hello [192.0.2.10]\n"
                  "221 2.0.0 MAIL01 Service closing transmission channel\n"
                  "s-computername mail01; folder smtp-collect-MAIL01; MAIL01.log")
    masked = mask_text(transcript)
    assert "MAIL01" not in masked.upper()
    assert masked.splitlines()[0].startswith("220 host-1.invalid Microsoft ESMTP MAIL Service")
    assert masked.splitlines()[1] == "250-host-1.invalid Hello [ipv4-1]"
    assert masked.splitlines()[2] == "221 2.0.0 host-1.invalid Service closing transmission channel"
    assert "smtp-collect-host-1.invalid" in masked


def test_word_like_name_masked_only_as_host():
    masked = mask_text("220 mail Microsoft ESMTP MAIL Service ready\n250 2.6.0 Queued mail for delivery\n"
                       "connect to mail:25")
    assert masked.splitlines()[0] == "220 host-1.invalid Microsoft ESMTP MAIL Service ready"
    assert masked.splitlines()[1] == "250 2.6.0 Queued mail for delivery"
    assert masked.splitlines()[2] == "connect to host-1.invalid:25"


def test_smtp_keyword_name_not_masked_as_word():
    masked = mask_text("220 MAIL Microsoft ESMTP MAIL Service\nMAIL FROM:<a@b.example> then DATA")
    assert masked.startswith("220 host-2.invalid Microsoft ESMTP MAIL Service\nMAIL FROM:<user-1@")
    assert masked.endswith(" then DATA")


def test_capital_name_matched_with_its_case():
    masked = mask_text("220 EXCHSRV Microsoft ESMTP MAIL Service\nEXCHSRV queued it; Microsoft Exchange logs")
    assert masked == ("220 host-1.invalid Microsoft ESMTP MAIL Service\n"
                      "host-1.invalid queued it; Microsoft Exchange logs")


@pytest.mark.parametrize("text", [
    "250 2.6.0 Queued mail for delivery",
    "SERVER = \"lab\"; the server MAIL01 is named here without any banner",
    "Relay Restrictions, Pickup, Queue, Badmail, Drop, Smart Host",
])
def test_ordinary_words_kept(text):
    assert mask_text(text) == text


def test_added_host_masked_everywhere():
    masker = Masker()
    masker.add_host("SRV-APP")
    masked = masker.mask("SERVER = 'SRV-APP:25'; srv-app answered; SRV-APPX is another")
    assert masked == "SERVER = 'host-1.invalid:25'; host-1.invalid answered; SRV-APPX is another"


@pytest.mark.parametrize("name", ["localhost", "192.0.2.4", "host-3.invalid", "not a name"])
def test_added_host_ignored(name):
    masker = Masker()
    masker.add_host(name)
    assert masker.known_names == set()


def test_notebook_learns_name_from_later_cell():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell('target = "MAIL01"'),
        nbformat.v4.new_code_cell("probe()", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="220 MAIL01 Microsoft ESMTP MAIL Service\n")]),
    ]
    masked = mask_notebook(notebook)
    assert masked.cells[0].source == 'target = "host-1.invalid"'
    assert masked.cells[1].outputs[0].text == "220 host-1.invalid Microsoft ESMTP MAIL Service\n"
