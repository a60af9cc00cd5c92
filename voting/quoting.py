"""A delegation's own words inside text the secretariat publishes, never mistakable for the secretariat's."""

from __future__ import annotations

import unicodedata

QUOTE = "    | "


def quoted_lines(text: str) -> list[str]:
    """Each line of `text` behind a quote mark, control and format characters removed.

    `str.splitlines` breaks at every line boundary a reader's software may
    honour (vertical tab, form feed, U+0085, U+2028, U+2029, ...), so no part
    of an explanation can start a line of its own and pass for an outcome or
    a SHA-256 line of the board; bidirectional overrides are format
    characters and go too.
    """
    return [
        QUOTE + "".join(c for c in line if unicodedata.category(c) not in ("Cc", "Cf")).rstrip()
        for line in text.splitlines()
    ]
