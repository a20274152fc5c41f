"""The one place where untrusted text becomes something we print or show.

Anything that came from a repository (paths, package names, branch names), the
API (error messages quoting content), a file or the database is *data*. Shown
raw, an escape sequence in a directory name can retitle the terminal, clear the
screen or hide the rest of a row; shown as Rich markup, ``[/oops]`` crashes a
view and ``[link=...]`` becomes a live link. So every output format and every
console view passes such text through :func:`visible` (plain strings: table,
CSV, Markdown, log lines) or :func:`safe_text` (Rich/Textual renderables).

Hand-written rather than a library: no maintained package makes C0/C1 controls
and bidirectional overrides *visible* (the ones that exist strip them, and a
stripped character hides what an attacker put in a name, which a responder
needs to see).

:func:`scrub_url` and :func:`split_url_credentials` keep credentials embedded in
URLs (``https://user:secret@host``, ``?access_token=...``) out of everything we
store or show; :func:`engine.github.auth.redact` covers tokens in free text.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from rich.text import Text

# Unicode "control pictures": U+2400 + code point for C0, U+2421 for DEL.
_C0_PICTURES = {code: chr(0x2400 + code) for code in range(0x20)}
_C0_PICTURES[0x7F] = "\u2421"
# Bidirectional overrides and isolates (Trojan Source), zero-width and other invisible
# format characters: shown as <U+XXXX> so a reordered or hidden name is visible.
_INVISIBLE = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A)) | {
    0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2028, 0x2029, 0x061C, 0xFEFF, 0x00AD,
}
_NEEDS_WORK = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]"
)


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code in _C0_PICTURES:
        return _C0_PICTURES[code]
    if 0x80 <= code <= 0x9F:            # C1 controls: CSI (0x9b) and OSC (0x9d) start sequences too
        return f"\\x{code:02x}"
    return f"<U+{code:04X}>"


def visible(value: object, *, keep_newlines: bool = False) -> str:
    """``value`` as a string with every control character made visible.

    ESC becomes ``␛``, BEL ``␇``, a newline ``␊`` (unless ``keep_newlines``, for
    multi-line bodies such as an error detail), C1 controls ``\\x9b``, bidi and
    invisible format characters ``<U+202E>``. Printable text is unchanged, so
    ordinary names round-trip exactly.
    """
    text = value if isinstance(value, str) else str(value)
    if not _NEEDS_WORK.search(text):
        return text
    if keep_newlines:
        return "\n".join(_NEEDS_WORK.sub(_picture, line) for line in text.split("\n"))
    return _NEEDS_WORK.sub(_picture, text)


def safe_text(value: object, style: str = "", *, keep_newlines: bool = False) -> Text:
    """A Rich ``Text`` of ``value`` made visible: never parsed as markup."""
    return Text(visible(value, keep_newlines=keep_newlines), style=style)


# Query parameters that carry credentials in URLs GitHub tools meet.
_SECRET_PARAMS = {"access_token", "token", "client_secret", "private_token", "sig", "signature",
                  "password", "api_key", "apikey", "key", "jwt", "code"}
REDACTED = "***"


def split_url_credentials(url: str) -> tuple[str, str | None]:
    """``url`` without userinfo, and the secret it carried (the password, or a
    lone user name, as ``https://TOKEN@host`` is written), or None."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    secret = unquote(password or user) or None
    return urlunsplit(parts._replace(netloc=hostport)), secret


def scrub_url(url: str) -> str:
    """``url`` safe to store and show: userinfo and secret query values replaced."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            query = urlencode([(k, REDACTED if k.lower() in _SECRET_PARAMS else v) for k, v in pairs],
                              safe="*", quote_via=quote)
    return urlunsplit(parts._replace(netloc=netloc, query=query))
