"""Readable text for system errors in user messages: "permission denied", never "[Errno 13] ..."."""

from __future__ import annotations

import os


def os_error_text(exc: BaseException, path: str | os.PathLike | None = None) -> str:
    """The reason of `exc` as readable text, naming its file unless that file is `path`.

    Messages start with the file they are about, and `str()` of an OSError (or of a PyAV error,
    which carries the same fields) adds "[Errno N]" and the quoted name again. An exception
    without an errno text is shown as it is.
    """
    strerror = getattr(exc, "strerror", None)
    if not isinstance(strerror, str) or not strerror:
        return str(exc)
    text = strerror[:1].lower() + strerror[1:]
    names = (getattr(exc, "filename", None), getattr(exc, "filename2", None))
    others = [os.fspath(name) for name in names
              if name is not None and (path is None or os.fspath(name) != os.fspath(path))]
    return f"{text}: {', '.join(others)}" if others else text
