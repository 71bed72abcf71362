"""MkDocs hook: the docstrings' reStructuredText roles (``:meth:`x```) rendered as plain code, not as text."""

import re

ROLE = re.compile(r":(?:mod|func|class|meth|attr|data|exc|obj|const):(<code>)")


def on_page_content(html: str, **kwargs) -> str:
    return ROLE.sub(r"\1", html)
