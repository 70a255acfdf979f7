"""Pages as PDF, made on the server with WeasyPrint (letters, the annual report). Nothing is fetched
over the network or from disk: a page carries its own styles, and its only images are inline
`data:` URLs (WeasyPrint's own fetcher, limited to that protocol)."""

from __future__ import annotations

import base64


def inline_image(data: bytes, mimetype: str = "image/png") -> str:
    """An image as a `data:` URL for a page made into PDF."""
    return f"data:{mimetype};base64,{base64.b64encode(data).decode('ascii')}"


def pdf_of(html: str) -> bytes:
    """The page as PDF."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    fetcher = URLFetcher(allowed_protocols={"data"})
    pdf: bytes = HTML(string=html, url_fetcher=fetcher).write_pdf()
    return pdf
