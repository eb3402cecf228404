"""The Spark Connect URL: checked when the settings are read, joined with its token in one place.

Spark Connect's grammar (pyspark's ``DefaultChannelBuilder``) is
``sc://HOST[:PORT][/;key=value;key=value…]``: parameters come only after a ``/``, each is one
``key=value`` pair, and values are percent-decoded. A token is one of those parameters, so the
URL that carries it is a secret as a whole. pyspark's own parse errors quote the parts they
refuse, token included: a URL is therefore checked here, before pyspark ever sees it, and every
message below shows the URL only up to its first ``;``.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

# What a redacted token reads as, in every message that could have shown it.
REDACTED = "<SPARK_CONNECT_TOKEN>"


class SparkUrlError(ValueError):
    """A Spark Connect URL pyspark would refuse; the message never holds a parameter's value."""


class TokenInUrlError(SparkUrlError):
    """A URL with its token: the token belongs in a secret of its own, never in a shown value."""


def shown(url: str) -> str:
    """The part of ``url`` safe to show: everything before its parameters."""
    return url.split(";", 1)[0]


def check_remote(url: str) -> str:
    """``url`` if it is a Spark Connect URL without a token, else raise ``SparkUrlError``."""
    head, _, params = url.partition(";")
    # pyspark reads the URL as http:// to reuse Python's parser; so does this check.
    parts = urlsplit("http" + head[2:]) if head.startswith("sc://") else None
    if parts is None or not parts.hostname:
        raise SparkUrlError(f"{shown(url)!r} is not a Spark Connect URL: it must look like sc://HOST:PORT.")
    try:
        parts.port  # noqa: B018 (the property raises on a port that is no number)
    except ValueError:
        raise SparkUrlError(
            f"{shown(url)!r} has no valid port: write sc://HOST:PORT, PORT a number."
        ) from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise SparkUrlError(
            f"{shown(url)!r} has a path, query or fragment, which Spark Connect does not take: "
            "write sc://HOST:PORT, with any parameters after a '/' (sc://HOST:PORT/;use_ssl=true)."
        )
    # pyspark refuses an empty parameter (sc://HOST/;;a=b) as it refuses a pair without "=".
    for param in params.split(";") if params else []:
        key, equals, value = param.partition("=")
        if key.strip() == "token":
            raise TokenInUrlError(f"{shown(url)!r} carries a token.")
        if not equals or "=" in value:
            raise SparkUrlError(
                f"A parameter of {shown(url)!r} ({key!r}) is not one key=value pair: percent-encode "
                "any '=' or ';' in its value (%3D, %3B)."
            )
    if params and not head.endswith("/"):
        raise SparkUrlError(
            f"The parameters of {shown(url)!r} must follow a '/': write {head}/;… instead of {head};…"
        )
    return url


def connect_url(remote: str, token: str | None) -> str:
    """The URL Spark Connect takes: ``remote``, checked, with ``token`` added.

    The result is a secret: pass it to pyspark or dbt, never to a message or a log. Both
    ``sc://HOST:PORT`` and ``sc://HOST:PORT/`` take the token as a parameter after one ``/``;
    the token is percent-encoded, so an ``=`` or ``;`` in it (base64 padding) stays its own.
    """
    check_remote(remote)
    if not token:
        return remote
    head, _, params = remote.partition(";")
    return ";".join([head.rstrip("/") + "/", *([params] if params else []), f"token={quote(token, safe='')}"])


def redact(text: str, token: str | None) -> str:
    """``text`` with ``token`` replaced, as written and as it is percent-encoded in the URL."""
    if not token:
        return text
    for form in {token, quote(token, safe=""), quote(token)}:
        text = text.replace(form, REDACTED)
    return text
