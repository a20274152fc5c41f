"""The one place untrusted text passes through: what a hostile name must not do."""

from rich.console import Console

from engine.safetext import safe_text, scrub_url, split_url_credentials, visible


def test_escape_sequences_become_visible_characters():
    title = "\x1b]0;pwned\x07evil/package-lock.json"
    shown = visible(title)
    assert "\x1b" not in shown and "\x07" not in shown
    assert shown == "␛]0;pwned␇evil/package-lock.json"
    assert visible("a\x1b[2Jb") == "a␛[2Jb"


def test_c1_controls_bidi_and_newlines_are_shown_not_obeyed():
    assert visible("x\x9b31my") == "x\\x9b31my"
    assert visible("admin\u202etxt.exe") == "admin<U+202E>txt.exe"
    assert visible("line1\nline2") == "line1␊line2"
    assert visible("line1\nline2\x1b", keep_newlines=True) == "line1\nline2␛"


def test_ordinary_names_are_unchanged():
    for name in ("@scope/pkg", "packages/web/pnpm-lock.yaml", "naïve-名前", "a\tb".replace("\t", " ")):
        assert visible(name) == name


def test_safe_text_is_never_markup():
    console = Console(width=80, record=True, force_terminal=False)
    console.print(safe_text("[/oops]crash/[link=https://evil]x[/link]"))
    assert "[/oops]crash/[link=https://evil]x[/link]" in console.export_text()


def test_url_credentials_are_split_and_scrubbed():
    assert split_url_credentials("http://user:s3cret@127.0.0.1:8080/api") == ("http://127.0.0.1:8080/api", "s3cret")
    assert split_url_credentials("https://ghp_abc@example.com") == ("https://example.com", "ghp_abc")
    assert split_url_credentials("https://example.com/x") == ("https://example.com/x", None)
    assert scrub_url("http://user:s3cret@host/x?access_token=t0k&page=2") == "http://***@host/x?access_token=***&page=2"
    assert "s3cret" not in scrub_url("https://user:s3cret@host")
