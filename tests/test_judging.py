"""The outer headers as judging reads them: the plain reading agrees with the email parser's, whatever the block."""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32

from hypothesis import given, settings
from hypothesis import strategies as st

from voting.service.judging import OuterHeaders, plain_fields

NAMES = ["From", "from", "Message-ID", "Auto-Submitted", "Precedence", "To", "Subject", "From ", "", "Fr om", "X:Y"]
PIECES = ["a@b.example", " ", "\t", "<id@host>", "auto-replied", "bulk", ";", ":", "é", "\x0b", "\r", '"q"', "(c)",
          ",", "=?utf-8?q?x?=", "\x00"]
line = st.one_of(
    st.tuples(st.sampled_from(NAMES), st.lists(st.sampled_from(PIECES), max_size=4)).map(
        lambda field: field[0] + ":" + "".join(field[1])),
    st.tuples(st.sampled_from([" ", "\t"]), st.lists(st.sampled_from(PIECES), max_size=3)).map(
        lambda fold: fold[0] + "".join(fold[1])),
    st.lists(st.sampled_from(PIECES), max_size=3).map("".join),
)
blocks = st.tuples(st.lists(st.tuples(line, st.sampled_from(["\r\n", "\n", "\r"])), max_size=7),
                   st.sampled_from(["\r\n", "\n", ""])).map(
    lambda block: ("".join(text + end for text, end in block[0]) + block[1]).encode("utf-8"))


@settings(max_examples=400, deadline=None)
@given(blocks)
def test_plain_fields_are_what_the_email_parser_reads(block: bytes) -> None:
    fields = plain_fields(block)
    if fields is None:
        return
    parsed = BytesHeaderParser(policy=compat32).parsebytes(block)
    for name in ("from", "message-id", "auto-submitted", "precedence", "to", "subject"):
        assert fields.get(name, "") == " ".join(str(parsed.get(name, "")).split())


def test_outer_headers_of_a_plain_reply() -> None:
    raw = (b"From: Delegation of France <Vote@France.Example>\r\nMessage-ID: <a1@france.example>\r\n"
           b"Subject: Re: Ballot\r\n  folded\r\nPrecedence: bulk\r\n\r\nbody\r\nFrom: other@x.example\r\n")
    assert OuterHeaders.of(raw) == OuterHeaders("<a1@france.example>", "vote@france.example", True)


def test_a_block_the_plain_reading_leaves_to_the_parser() -> None:
    assert plain_fields(b"From x@y Mon Jan  1 00:00:00 2026\r\nFrom: a@b.example\r\n\r\n") is None
    assert OuterHeaders.of(b"From: caf\xc3\xa9 <a@b.example>\r\n\r\n").from_address == "a@b.example"
