"""Sample replies that show how different servers word the same refusal, explained by the knowledge base.

The runbooks show these so that an admin who learned the IIS wording in the lab recognises the
same problem on Postfix, Exim, Exchange or Microsoft 365. Each line is run through `explain()`,
so the table shows what the tool itself concludes, not a stored result.
"""

from __future__ import annotations

import pandas as pd

from adminkb.i18n import message
from adminkb.smtp.replies import Reply, explain

# Relay refusals in each server's own wording (addresses are reserved example names).
RELAY_DENIAL_SAMPLES = (
    ("IIS SMTP", "550 5.7.1 Unable to relay for user@example.net"),
    ("Exchange 2013+", "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"),
    ("Microsoft 365", "550 5.7.64 TenantAttribution; Relay Access Denied"),
    ("Postfix", "554 5.7.1 <user@example.net>: Relay access denied"),
    ("Exim", "550 relay not permitted"),
)


def relay_denial_examples() -> pd.DataFrame:
    """Return each sample relay refusal with the category and meaning the knowledge base gives it."""
    rows = []
    for server, line in RELAY_DENIAL_SAMPLES:
        explanation = explain(Reply.from_lines([line]))
        rows.append({
            message("smtp_examples.column_server"): server,
            message("smtp_examples.column_reply"): line,
            message("smtp_examples.column_category"): explanation.category,
            message("smtp_examples.column_meaning"): message(f"smtp.verdict.{explanation.category}"),
        })
    return pd.DataFrame(rows)
