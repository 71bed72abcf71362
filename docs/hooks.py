"""MkDocs hook for two GitHub-isms the pages keep so that they also read well on GitHub: the docstrings'
reStructuredText roles (``:meth:`x```) are shown as plain code, and a table cell's escaped pipe inside inline
code (``a\\|b``, which GitHub needs) is shown as ``|``."""

import re

ROLE = re.compile(r":(?:mod|func|class|meth|attr|data|exc|obj|const):(<code>)")
INLINE_CODE = re.compile(r"<code>(.*?)</code>", re.S)


def on_page_content(html: str, **kwargs) -> str:
    html = ROLE.sub(r"\1", html)
    return INLINE_CODE.sub(lambda m: "<code>" + m.group(1).replace("\\|", "|") + "</code>", html)
