"""Ballots as rendered, and replies as mail clients really write them, in the six UN languages."""

from __future__ import annotations

import base64
import quopri
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voting.ballot import (
    CHOICE_WORDS,
    TEXT_LIMIT,
    Ballot,
    new_ballot_token,
    parse_reply,
    render_ballot_html,
    render_ballot_text,
    text_of_entity,
)
from voting.errors import UsageError
from voting.model import Choice
from voting.reasons import Reason


TOKEN = "Xq2s7w0F8xH1m9kz0bA1Rg"
ONE = ("S/2020/654",)
TWO = ("S/2020/654", "S/2020/658")
SYRIA = [
    ("S/2020/654", "Draft resolution on cross-border humanitarian assistance in Syria (Belgium, Germany)"),
    ("S/2020/658", "Draft resolution on cross-border humanitarian assistance in Syria (Russian Federation)"),
]


def ballot(drafts: list[tuple[str, str]] = SYRIA[:1], *, html: bool = False, **overrides: object) -> str:
    arguments: dict[str, object] = {
        "vote_id": "unsc-2020-0007",
        "token": TOKEN,
        "delegation_code": "FRA",
        "delegation_name": "France",
        "closes": datetime(2020, 7, 8, 12, 0, tzinfo=timezone.utc),
        "drafts": drafts,
        "title": "Written procedure: Syria, cross-border humanitarian assistance",
    } | overrides
    arguments["drafts"] = tuple(arguments["drafts"])  # type: ignore[arg-type]
    return (render_ballot_html if html else render_ballot_text)(Ballot(**arguments))  # type: ignore[arg-type]


def quoted(text: str, prefix: str = "> ") -> str:
    return "\n".join((prefix + line).rstrip() for line in text.splitlines())


def entity(body: bytes, content_type: str = 'text/plain; charset="utf-8"', encoding: str = "8bit") -> bytes:
    return (
        f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n".encode() + body
    ).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# --- rendering ----------------------------------------------------------------------------------


def test_ballot_token_is_128_random_bits_in_base64url() -> None:
    tokens = {new_ballot_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", token)
        assert len(base64.urlsafe_b64decode(token + "==")) == 16


def test_ballot_text_carries_the_contract_lines() -> None:
    text = ballot(SYRIA, closes=datetime(2020, 7, 8, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    lines = text.splitlines()
    header = ["Vote-ID: unsc-2020-0007", f"Ballot-Token: {TOKEN}", "Delegation: FRA (France)",
              "Closes: Wednesday 8 July 2020, 12:00 UTC", "", "S/2020/654: YES | NO | ABSTAIN"]  # fmt: skip
    start = lines.index(header[0])
    assert lines[start : start + len(header)] == header
    assert "S/2020/658: YES | NO | ABSTAIN" in lines
    for symbol, title in SYRIA:
        assert f"    {title}" in lines
        assert not any(symbol in line and title in line for line in lines)
    assert "S/MIME" in text and "quoted" in text and '"S/2020/654: YES"' in text
    assert '"Explanation:"' in text and "not published" in text
    assert "VOTE: YES" not in text, "VOTE: is only offered on a ballot with one draft"
    assert '"VOTE: YES"' in ballot()


def test_ballot_text_without_instructions() -> None:
    text = ballot(instructions=False)
    assert "S/MIME" not in text and text.rstrip().endswith(SYRIA[0][1])


def test_a_rendered_ballot_replied_to_unchanged_binds_but_chooses_nothing() -> None:
    for rendered in (ballot(SYRIA), text_of_entity(entity(ballot(SYRIA, html=True).encode(), "text/html"))):
        reply = parse_reply(rendered, TWO)
        assert (reply.vote_id, reply.token) == ("unsc-2020-0007", TOKEN)
        assert reply.choices == {} and reply.problem is Reason.NO_CHOICE
        assert not any(line.startswith("S/2020/") for line in reply.explanation.splitlines())


def test_ballot_html_is_escaped_and_self_contained() -> None:
    page = ballot([("S/2020/654", "<script>alert(1)</script> & more")], html=True,
                  title='Vote "A" <b>', delegation_name="Côte d'Ivoire <CIV>")  # fmt: skip
    assert "<script>" not in page and "&lt;script&gt;" in page and "&amp; more" in page
    assert "<b>" not in page and "Côte d&#x27;Ivoire &lt;CIV&gt;" in page
    assert not re.search(r"(src|href)\s*=|<link|<img|url\(|@import", page, re.IGNORECASE)
    assert "Vote-ID: unsc-2020-0007\nBallot-Token: " + TOKEN in page
    assert "S/2020/654: YES | NO | ABSTAIN" in page


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"closes": datetime(2020, 7, 8, 12, 0)}, "time zone"),
        ({"vote_id": "unsc 2020"}, "vote ID"),
        ({"token": "short"}, "ballot token"),
        ({"delegation_code": "fra"}, "delegation code"),
        ({"drafts": []}, "at least one draft"),
        ({"drafts": [("S/2020/654: x", "")]}, "without ':'"),
        ({"drafts": [("S/2020/654", ""), ("s/2020/654", "")]}, "cannot be told apart"),
    ],
)
def test_ballot_refuses_values_a_reply_could_not_carry(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ballot(**overrides)  # type: ignore[arg-type]


# --- replies from real mail clients ---------------------------------------------------------------


THUNDERBIRD = (
    "S/2020/654: YES\n"
    "\n"
    "Explanation:\n"
    "France votes in favour: the cross-border mechanism is a lifeline for \n"
    "millions of Syrians.\n"
    "\n"
    "-- \n"
    "Permanent Mission of France to the United Nations\n"
    "S/2020/658: NO\n"
    "\n"
    "On 07/07/2020 10:00, votes@secretariat.example wrote:\n"
)


def test_thunderbird_reply_flowed_with_signature_and_quoted_ballot() -> None:
    body = THUNDERBIRD + quoted(ballot(SYRIA)) + "\n"
    raw = entity(body.encode(), "text/plain; charset=UTF-8; format=flowed")
    reply = parse_reply(text_of_entity(raw), TWO)
    assert (reply.vote_id, reply.token) == ("unsc-2020-0007", TOKEN)
    assert reply.choices == {"S/2020/654": Choice.YES}
    assert reply.problem is None and reply.problem_detail is None
    assert reply.explanation == (
        "France votes in favour: the cross-border mechanism is a lifeline for millions of Syrians."
    )


def test_gmail_attribution_split_over_two_lines_is_not_explanation() -> None:
    text = (
        "VOTE: abstain\n\nOn Tue, Jul 7, 2020 at 10:00 AM Security Council Affairs Division <\n"
        "votes@secretariat.example> wrote:\n\n" + quoted(ballot(), "> > ")
    )
    reply = parse_reply(text, ONE)
    assert reply.choices == {"S/2020/654": Choice.ABSTAIN}
    assert (reply.vote_id, reply.token, reply.explanation) == ("unsc-2020-0007", TOKEN, "")


def outlook(choice_lines: str, separator: str) -> bytes:
    header = (
        "From: Security Council Affairs Division <votes@secretariat.example>\n"
        "Sent: Tuesday, July 7, 2020 10:00 AM\n"
        "To: Permanent Mission of the Russian Federation <rus@un.example>\n"
        "Subject: Ballot: S/2020/654\n"
    )
    body = f"{choice_lines}\n\n{separator}\n{header}\n{ballot()}"
    return entity(quopri.encodestring(body.encode()), 'text/plain; charset="utf-8"', "quoted-printable")


@pytest.mark.parametrize("separator", ["-----Original Message-----", "_" * 32, ""])
def test_outlook_reply_with_unquoted_original(separator: str) -> None:
    text = text_of_entity(outlook("Vote: Against.\r\nThe Russian Federation’s position is well known.", separator))
    assert "Original Message" in text or separator != "-----Original Message-----"
    reply = parse_reply(text, ONE)
    assert (reply.vote_id, reply.token) == ("unsc-2020-0007", TOKEN)
    assert reply.choices == {"S/2020/654": Choice.NO}
    assert reply.explanation == "" and reply.ignored == "The Russian Federation’s position is well known."
    assert reply.problem is None


def test_outlook_template_line_below_the_original_is_not_a_choice() -> None:
    reply = parse_reply(text_of_entity(outlook("Thank you.", "-----Original Message-----")), ONE)
    assert reply.choices == {} and reply.problem is Reason.NO_CHOICE
    assert reply.vote_id == "unsc-2020-0007" and (reply.explanation, reply.ignored) == ("", "Thank you.")


def test_template_line_copied_unquoted_is_neither_choice_nor_explanation() -> None:
    reply = parse_reply(f"S/2020/654: YES | NO | ABSTAIN\nS/2020/654: [ ] YES [ ] NO\n\n{ballot()}", ONE)
    assert reply.choices == {} and reply.problem is Reason.NO_CHOICE
    assert not any(line.startswith("S/2020/") for line in reply.explanation.splitlines())


@pytest.mark.parametrize(
    ("line", "choice"),
    [
        ("S/2020/654 : Pour", Choice.YES),
        ("S/2020/654\u00a0: Contre.", Choice.NO),
        ("S/2020/654 : abstention", Choice.ABSTAIN),
        ("S/2020/654: За", Choice.YES),
        ("S/2020/654: ПРОТИВ", Choice.NO),
        ("ГОЛОС: воздержалась", Choice.ABSTAIN),
        ("S/2020/654：赞成", Choice.YES),
        ("S/2020/654: 反对。", Choice.NO),
        ("投票：弃权", Choice.ABSTAIN),
        ("\u200fS/2020/654: نعم\u200f", Choice.YES),
        ("S/2020/654: لا", Choice.NO),
        ("تصويت: امتناع", Choice.ABSTAIN),
        ("S/2020/654: A favor", Choice.YES),
        ("S/2020/654: Si\u0301", Choice.YES),
        ("VOTO: en contra", Choice.NO),
        ("S/2020/654: Abstencion", Choice.ABSTAIN),
        ("S/2020/654: in favour", Choice.YES),
        ("  s/2020/654:   *YES*  ", Choice.YES),
        ("**S/2020/654: no**", Choice.NO),
        ("VOTE: yes", Choice.YES),
        ("Vote : Yes!", Choice.YES),
        ("S/2020/654: [ ] YES [x] NO [ ] ABSTAIN", Choice.NO),
        ("VOTE: [X] YES", Choice.YES),
    ],
)
def test_one_draft_choice_in_every_language_and_form(line: str, choice: Choice) -> None:
    reply = parse_reply(f"{line}\n\n{quoted(ballot())}", ONE)
    assert reply.choices == {"S/2020/654": choice}, line
    assert reply.problem is None and reply.explanation == ""


def test_choice_words_cover_the_six_languages() -> None:
    for word in ("yes", "in favour", "in favor", "for", "pour", "a favor", "sí", "si", "за", "赞成", "نعم"):
        assert CHOICE_WORDS[word] is Choice.YES
    for word in ("no", "against", "contre", "en contra", "против", "反对", "لا"):
        assert CHOICE_WORDS[word] is Choice.NO
    for word in ("abstain", "abstention", "abstención", "abstencion", "воздержался", "воздержалась",
                 "воздерживаюсь", "弃权", "امتناع"):  # fmt: skip
        assert CHOICE_WORDS[word] is Choice.ABSTAIN


def test_two_drafts_each_with_its_own_line() -> None:
    reply = parse_reply(f"S/2020/654: [X] NO\nS/2020/658: oui\n\n{quoted(ballot(SYRIA))}", TWO)
    assert reply.choices == {"S/2020/654": Choice.NO, "S/2020/658": Choice.YES}
    assert reply.problem is None


def test_some_drafts_may_be_left_unanswered() -> None:
    reply = parse_reply("S/2020/658: abstain\n", TWO)
    assert reply.choices == {"S/2020/658": Choice.ABSTAIN} and reply.problem is None


@pytest.mark.parametrize("line", ["VOTE: yes", "Vote: [X] YES"])
def test_a_choice_naming_no_draft_on_a_two_draft_ballot_is_unknown_draft(line: str) -> None:
    reply = parse_reply(f"S/2020/654: no\n{line}\n{quoted(ballot(SYRIA))}", TWO)
    assert reply.problem is Reason.UNKNOWN_DRAFT
    assert reply.problem_detail and "names no draft" in reply.problem_detail and "S/2020/654: YES" in reply.problem_detail


def test_a_draft_not_on_the_ballot_is_named() -> None:
    reply = parse_reply("S/2020/654: yes\nS/2020/999: no\n", ONE)
    assert reply.problem is Reason.UNKNOWN_DRAFT
    assert reply.problem_detail == (
        'the line "S/2020/999: no" was not understood: S/2020/999 is not a draft on this ballot (S/2020/654)'
    )


@pytest.mark.parametrize("line", ["Our vote: against", "Position de la France : contre", "Ответ: за"])
def test_a_choice_under_any_other_key_is_refused_as_not_understood(line: str) -> None:
    for text in (f"{line}\n", f"VOTE: YES\n{line}\n"):
        reply = parse_reply(text, ONE)
        assert reply.problem is Reason.UNKNOWN_DRAFT
        assert reply.problem_detail and f'the line "{line}" was not understood' in reply.problem_detail


@pytest.mark.parametrize("line", ["for.", "Yes", "[X] YES", "[x] abstain", "Contre.", "赞成", "نعم", "*NO*"])
def test_a_word_alone_on_a_line_is_never_a_choice(line: str) -> None:
    reply = parse_reply(f"VOTE: NO\n\nWe regret that we cannot vote\n{line}\n\n{quoted(ballot())}", ONE)
    assert reply.choices == {"S/2020/654": Choice.NO} and reply.problem is None
    alone = parse_reply(f"{line}\n\n{quoted(ballot())}", ONE)
    assert alone.choices == {} and alone.problem is Reason.NO_CHOICE
    assert alone.problem_detail and f'the line "{line}" was not understood as a choice' in alone.problem_detail


def test_conflicting_choices_name_the_draft_but_repeating_one_is_fine() -> None:
    assert parse_reply("S/2020/654: yes\nVOTE: Pour\nVote: [X] in favour\n", ONE).problem is None
    reply = parse_reply("S/2020/654: yes\nS/2020/658: no\nS/2020/654: против\n", TWO)
    assert reply.problem is Reason.CONFLICTING_CHOICES
    assert reply.problem_detail == "S/2020/654: YES and NO"
    assert parse_reply("S/2020/654: [X] YES [X] NO\n", ONE).problem is Reason.CONFLICTING_CHOICES


def test_quoted_choice_lines_do_not_count() -> None:
    reply = parse_reply("I agree with the below.\n> S/2020/654: YES\n  >> VOTE: yes\n> > [X] YES\n", ONE)
    assert reply.choices == {} and reply.problem is Reason.NO_CHOICE
    assert (reply.explanation, reply.ignored) == ("", "I agree with the below.")


def test_choice_below_the_quote_counts_and_only_marked_text_is_explanation() -> None:
    text = (f"{quoted(ballot())}\n\nDear colleagues,\nExplanation of vote: the draft\nfalls short.\n"
            "S/2020/654: abstain\n\nVote-ID: unsc-2020-0007\n")
    reply = parse_reply(text, ONE)
    assert reply.choices == {"S/2020/654": Choice.ABSTAIN}
    assert (reply.explanation, reply.ignored) == ("the draft\nfalls short.", "Dear colleagues,")
    assert reply.vote_id == "unsc-2020-0007"


def test_text_that_merely_mentions_a_choice_is_no_choice() -> None:
    reply = parse_reply("S/2020/654: yes, with reservations\nNo objection in principle.\n", ONE)
    assert reply.choices == {} and reply.problem is Reason.NO_CHOICE
    assert reply.ignored == "S/2020/654: yes, with reservations\nNo objection in principle."


def test_two_vote_ids_or_tokens_bind_to_nothing() -> None:
    other = quoted(ballot(vote_id="unsc-2020-0008", token="Yq2s7w0F8xH1m9kz0bA1Rg"))
    reply = parse_reply(f"VOTE: yes\n{quoted(ballot())}\n{other}", ONE)
    assert (reply.vote_id, reply.token, reply.problem) == (None, None, Reason.UNKNOWN_VOTE)
    reply = parse_reply(f"VOTE: yes\n{quoted(ballot())}\n> Ballot-Token: Yq2s7w0F8xH1m9kz0bA1Rg", ONE)
    assert (reply.vote_id, reply.token, reply.problem) == ("unsc-2020-0007", None, Reason.WRONG_BALLOT_TOKEN)


def test_binding_alone_is_read_without_drafts() -> None:
    reply = parse_reply(f"S/2020/654: yes\n{quoted(ballot())}", ())
    assert (reply.vote_id, reply.token, reply.choices) == ("unsc-2020-0007", TOKEN, {})


def test_a_reply_with_no_text_at_all() -> None:
    reply = parse_reply("", ONE)
    assert (reply.vote_id, reply.token, reply.problem) == (None, None, Reason.NO_CHOICE)


# --- the text of a signed entity ----------------------------------------------------------------


def test_thunderbird_signed_entity_from_the_interop_corpus(thunderbird: Path) -> None:
    raw = (thunderbird / "alice.mime").read_bytes()
    assert text_of_entity(raw).strip() == "This is a test message from Alice to Bob."


def test_quoted_printable_utf8_and_base64_windows_1252() -> None:
    words = "S/2020/654: Abstención\nExplicación de voto: la délégation s’abstient — “por ahora”.\n"
    qp = entity(quopri.encodestring(words.encode("utf-8")), "text/plain; charset=utf-8", "quoted-printable")
    b64 = entity(base64.encodebytes(words.encode("cp1252")), "text/plain; charset=windows-1252", "base64")
    for raw in (qp, b64):
        text = text_of_entity(raw)
        assert text.replace("\r\n", "\n") == words
        assert parse_reply(text, ONE).choices == {"S/2020/654": Choice.ABSTAIN}


def test_unknown_charset_is_read_as_utf8() -> None:
    assert text_of_entity(entity("VOTE: за".encode(), "text/plain; charset=x-unknown")) == "VOTE: за"
    assert text_of_entity(entity(b"VOTE: yes", "text/plain; charset=base64")) == "VOTE: yes"
    assert text_of_entity(entity(b"VOTE: yes", 'text/plain; charset="utf\x008"')) == "VOTE: yes"


def multipart(kind: str, *parts: bytes) -> bytes:
    inner = b"".join(b"--BOUNDARY\r\n" + part + b"\r\n" for part in parts)
    return f'Content-Type: multipart/{kind}; boundary="BOUNDARY"\r\n\r\n'.encode() + inner + b"--BOUNDARY--\r\n"


def test_alternative_prefers_plain_and_mixed_takes_the_first_plain() -> None:
    html = entity(b"<p>VOTE: no</p>", "text/html; charset=utf-8")
    plain = entity(b"VOTE: yes")
    assert text_of_entity(multipart("alternative", html, plain)) == "VOTE: yes"
    attachment = b"Content-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nVOTE: no"
    mixed = multipart("mixed", attachment, multipart("alternative", plain, html), entity(b"VOTE: abstain"))
    assert text_of_entity(mixed) == "VOTE: yes"


def test_html_only_reply_keeps_its_blockquote_quoted() -> None:
    markup = (
        "<html><head><style>p {color: red}</style></head><body>"
        "<div>S/2020/654: <b>Pour</b></div><div>La France vote&nbsp;pour.<br></div>"
        '<div class="moz-cite-prefix">On 07/07/2020 10:00, votes@secretariat.example wrote:<br></div>'
        f'<blockquote type="cite">{ballot(html=True)}<p>VOTE: NO</p></blockquote></body></html>'
    )
    text = text_of_entity(entity(markup.encode(), "text/html; charset=utf-8"))
    assert "> Vote-ID: unsc-2020-0007" in text
    reply = parse_reply(text, ONE)
    assert (reply.vote_id, reply.token) == ("unsc-2020-0007", TOKEN)
    assert reply.choices == {"S/2020/654": Choice.YES}
    assert (reply.explanation, reply.ignored) == ("", "La France vote pour.")


def test_outlook_html_reply_with_header_block() -> None:
    markup = (
        "<div>VOTE: Yes</div><hr><div id='divRplyFwdMsg'><b>From:</b> votes@secretariat.example<br>"
        f"<b>Sent:</b> Tuesday, July 7, 2020 10:00 AM<br></div>{ballot(html=True)}"
    )
    reply = parse_reply(text_of_entity(entity(markup.encode(), "text/html")), ONE)
    assert reply.choices == {"S/2020/654": Choice.YES} and reply.explanation == ""
    assert reply.token == TOKEN


def test_entity_without_text_gives_empty_text() -> None:
    assert text_of_entity(entity(b"\x00\x01", "application/octet-stream")) == ""
    assert text_of_entity(b"") == ""
    assert text_of_entity(b"Content-Type: ; format*0*=us-ascii'en'f :<p>; charset=\x00VOTE: yes\xff") == ""


def test_deeply_nested_entity_ends_quickly_without_error() -> None:
    head = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(3000))
    started = time.monotonic()
    assert text_of_entity(head + b"Content-Type: text/plain\r\n\r\nVOTE: yes") == ""
    assert time.monotonic() - started < 10


def test_huge_text_is_cut_at_the_limit() -> None:
    raw = entity(b"VOTE: yes\n" + b"x" * (3 * TEXT_LIMIT))
    text = text_of_entity(raw)
    assert len(text) <= TEXT_LIMIT
    assert parse_reply(text + "\n" * 10, ONE).choices == {"S/2020/654": Choice.YES}


@pytest.mark.parametrize("markup", ["<" * TEXT_LIMIT, "<a " * (TEXT_LIMIT // 3), "<p>" * (TEXT_LIMIT // 3),
                                    "<a " + "b " * (TEXT_LIMIT // 2) + ">", "<!--" * (TEXT_LIMIT // 4)])  # fmt: skip
def test_hostile_html_is_read_in_bounded_time(markup: str) -> None:
    started = time.monotonic()
    text_of_entity(entity(markup.encode(), "text/html"))
    assert time.monotonic() - started < 10


def test_long_line_of_blanks_is_read_in_bounded_time() -> None:
    started = time.monotonic()
    reply = parse_reply(" " * TEXT_LIMIT + ":" + "\n" + "a:" * (TEXT_LIMIT // 2), ONE)
    assert reply.problem is Reason.NO_CHOICE
    assert time.monotonic() - started < 10


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_give_text_never_an_exception(raw: bytes) -> None:
    assert isinstance(text_of_entity(raw), str)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("> :：[]xX|*-_\n\r/Sab0123 за赞成نعم\u200f")) | st.characters(),
               max_size=300))  # fmt: skip
def test_any_text_gives_a_reply_never_an_exception(text: str) -> None:
    reply = parse_reply(text, TWO)
    assert reply.problem is not None or reply.choices
    assert set(reply.choices) <= set(TWO)


@pytest.mark.parametrize("opener", ["Explanation:", "EXPLANATION OF VOTE:", "Explication de vote :", "Explicación:",
                                    "Объяснение мотивов голосования:", "解释：", "تعليل التصويت:"])
def test_an_explanation_is_only_what_the_delegate_marks_in_any_official_language(opener: str) -> None:
    text = (f"S/2020/654: NO\nWith the compliments of the Permanent Mission.\n{opener}\nThe text falls short.\n\n"
            "-- \nFirst Secretary, +1 212 555 0100\nThis email is confidential.\n")
    reply = parse_reply(text, ONE)
    assert reply.choices == {"S/2020/654": Choice.NO}
    assert reply.explanation == "The text falls short."
    assert reply.ignored == "With the compliments of the Permanent Mission."


# --- the silence procedure -----------------------------------------------------------------------


def test_a_silence_ballot_says_no_reply_is_needed_unless_objecting() -> None:
    text = ballot(silence=True)
    assert "S/2020/654: [ ] OBJECT" in text
    assert "YES | NO | ABSTAIN" not in text
    assert "You need not reply unless you object." in text
    assert 'for example "S/2020/654: OBJECT"' in text
    assert 'below a line "Explanation:": it is published with the result' in text
    assert "You need not reply unless you object." in ballot(silence=True, html=True)


@pytest.mark.parametrize("word", [
    "OBJECT", "objection", "I object", "je m'oppose", "objeción", "me opongo", "возражаю", "возражение",
    "反对", "异议", "異議", "أعترض", "اعتراض", "[x] OBJECT",
])
def test_an_objection_in_any_of_the_six_languages_breaks_silence(word: str) -> None:
    reply = parse_reply(f"S/2020/654: {word}\n\n" + quoted(ballot(silence=True)), ONE)
    assert reply.problem is None and reply.choices == {"S/2020/654": Choice.NO}


def test_a_silence_ballot_copied_unquoted_objects_to_nothing() -> None:
    reply = parse_reply(ballot(silence=True), ONE)
    assert reply.choices == {}


def test_the_letter_breaking_silence_is_the_published_explanation() -> None:
    letter = "France objects: the draft prejudges the negotiations under way."
    reply = parse_reply(f"S/2020/654: OBJECT\nExplanation:\n{letter}\n\n" + quoted(ballot(silence=True)), ONE)
    assert reply.choices == {"S/2020/654": Choice.NO}
    assert reply.explanation == letter
