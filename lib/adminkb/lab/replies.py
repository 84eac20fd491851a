"""The reply lines of the IIS 6.0 SMTP Service, as the lab sends them on the wire.

These are protocol texts, not user messages: the real service sends them in English whatever
the language of Windows, so they do not go through the catalog. Where a text or a detail
could not be confirmed from public transcripts, a NOTE marks it.

Confirmed from public transcripts and W3C logs of Windows 2000, Server 2003 and Server 2019:
the banner (two spaces after "ready at" and one space at the end), the HELO and EHLO replies,
Sender OK, the RCPT reply (which ends with a space: logged sc-bytes count it), Unable to relay,
Start mail input, Queued mail for delivery, Resetting, closing transmission channel,
Unrecognized command, the HELP reply, the VRFY reply, Invalid Address, and the size limit.
"""

from __future__ import annotations

BANNER = "220 {host} Microsoft ESMTP MAIL Service, Version: {version} ready at  {date} "
# NOTE: the banner with the metabase property ConnectResponse set. That the service then sends
# the host name and the admin's text, and nothing else, is not confirmed.
CUSTOM_BANNER = "220 {host} {text}"

HELO_OK = "250 {host} Hello [{client}]"
EHLO_FIRST = "250-{host} Hello [{client}]"
# The keywords after the greeting line, in the order the service lists them. AUTH lines go
# between the greeting and TURN when authentication is on.
EHLO_KEYWORDS = ("TURN", "SIZE {size}", "ETRN", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES",
                 "8bitmime", "BINARYMIME", "CHUNKING", "VRFY")
EHLO_LAST = "250 OK"

SENDER_OK = "250 2.1.0 {address}....Sender OK"
RECIPIENT_OK = "250 2.1.5 {address} "
UNABLE_TO_RELAY = "550 5.7.1 Unable to relay for {address}"
START_MAIL_INPUT = "354 Start mail input; end with <CRLF>.<CRLF>"
QUEUED = "250 2.6.0 {message_id} Queued mail for delivery"
RESETTING = "250 2.0.0 Resetting"
CLOSING = "221 2.0.0 {host} Service closing transmission channel"
UNRECOGNIZED = "500 5.3.3 Unrecognized command"
SIZE_EXCEEDED = "552 5.3.4 Message size exceeds fixed maximum message size"
INVALID_ADDRESS = "501 5.5.4 Invalid Address"
HELP = ("214-This server supports the following commands:",
        "214 HELO EHLO STARTTLS RCPT DATA RSET MAIL QUIT HELP AUTH TURN ETRN BDAT VRFY")
CANNOT_VRFY = "252 2.1.5 Cannot VRFY user, but will take message for <{address}>"
# NOTE: the service never sends these two; the lab's VRFY that reveals accounts uses them.
VRFY_USER_FOUND = "250 2.1.5 <{address}>"
VRFY_USER_UNKNOWN = "550 5.1.1 <{address}>... User unknown"

# NOTE: the following texts are the wording Microsoft's SMTP stack is reported to use in
# programming exercises and scanner output, not confirmed from a transcript of IIS 6.0 itself.
SEND_HELLO_FIRST = "503 5.5.2 Send hello first"
NEED_MAIL = "503 5.5.2 Need mail command"
NEED_RCPT = "503 5.5.2 Need rcpt command"
SENDER_ALREADY_SPECIFIED = "503 5.5.2 Sender already specified"
INVALID_ARGUMENTS = "501 5.5.4 Invalid arguments"
OK = "250 2.0.0 OK"
TLS_UNAVAILABLE = "554 5.7.3 Unable to initialize security subsystem"
AUTH_SUCCESSFUL = "235 2.7.0 Authentication successful"
AUTH_FAILED = "535 5.7.3 Authentication unsuccessful"
# The AUTH LOGIN prompts are base64 of "Username:" and "Password:".
AUTH_USERNAME_PROMPT = "334 VXNlcm5hbWU6"
AUTH_PASSWORD_PROMPT = "334 UGFzc3dvcmQ6"
# EHLO lines while Basic authentication is on: the service offers three mechanisms and the
# old AUTH= form, but the lab can only check LOGIN.
AUTH_KEYWORDS = ("AUTH GSSAPI NTLM LOGIN", "AUTH=LOGIN")
# NOTE: where STARTTLS sits in the EHLO list is recalled from Exchange 2003 transcripts, which
# also list a bare TLS keyword after VRFY. No transcript of the plain IIS 6.0 service confirms it.
TLS_KEYWORDS = ("TLS", "STARTTLS")

# NOTE: these replies are the lab's own choice, confirmed nowhere. They cover TURN without
# authentication, ETRN, a BDAT chunk that is not the last one, AUTH while authentication is
# off, the STARTTLS go-ahead, and AUTH cancelled, repeated, before TLS or with bad base64.
# RFC 4954 defines 538 5.7.11 for AUTH before TLS. LOCAL_ERROR covers a failure inside the
# lab, such as a mailroot it cannot write.
TURN_DENIED = "502 5.7.0 Permission denied"
READY_TO_START_TLS = "220 2.0.0 SMTP server ready"
AUTH_CANCELLED = "501 5.7.0 Authentication cancelled"
AUTH_ALREADY_DONE = "503 5.5.2 Already authenticated"
AUTH_NEEDS_TLS = "538 5.7.11 Encryption required for requested authentication mechanism"
INVALID_BASE64 = "501 5.5.4 Invalid base64 data"
ETRN_STARTED = "250 2.0.0 Queuing for node {domain} started"
CHUNK_RECEIVED = "250 2.0.0 {size} bytes received"
AUTH_UNAVAILABLE = "504 5.7.4 Unrecognized authentication type"
LOCAL_ERROR = "451 4.3.0 Error in processing"
