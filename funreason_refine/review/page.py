"""The review page: one HTML document with its CSS and script inline (no network but its own server).

No record text is ever written into the HTML: the script (templates/review.js) fetches records as
JSON and puts them on the page with ``textContent``, so a record cannot add markup, close an element
or run script. The server's Content-Security-Policy allows only this page's own script and style
(by nonce).
"""

from __future__ import annotations

from funreason_refine.pages import render


def render_page(token: str, nonce: str) -> str:
    """The page; ``token`` and ``nonce`` are URL-safe base64 (checked by the server), escaped all the same."""
    return render("review.html", token=token, nonce=nonce)
