"""The electorate file: round trips, clear errors naming the key, and the pure changes to it."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import stat
from pathlib import Path

import pytest
from conftest import voting
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from hypothesis import given, settings
from hypothesis import strategies as st

from voting import pki
from voting.electorate import (
    ElectorateFile,
    add_delegation,
    dump_electorate,
    load_electorate,
    parse_electorate,
    register_certificate,
    revoke,
    save_electorate,
    trust_of,
)
from voting.errors import ConfigError, UsageError
from voting.model import Delegation, Electorate, RegisteredCertificate
from voting.smime.sign import sign_entity

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "config" / "electorates" / "unsc-2020.toml"
PACKAGED = ROOT / "voting" / "data" / "unsc-2020.toml"
WHEN = dt.datetime(2020, 7, 8, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca() -> pki.Identity:
    return pki.create_ca("Secretariat CA", "United Nations")


@pytest.fixture(scope="module")
def france(ca: pki.Identity) -> x509.Certificate:
    identity = pki.issue_signing_certificate(ca, common_name="France", emails=["pr.france@un.example"], key_type="ec")
    return identity.certificate


@pytest.fixture(scope="module")
def unsc() -> Electorate:
    return load_electorate(COMMITTED)


def small() -> Electorate:
    return Electorate(
        name="Board",
        quorum=2,
        delegation=[
            Delegation(code="FRA", name="France", permanent=True, addresses=["fra@delegations.example"]),
            Delegation(code="NER", name="Niger", addresses=["ner@delegations.example"]),
        ],
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "electorate.toml"
    path.write_text(text)
    return path


# --- the committed electorate ----------------------------------------------------------------------


def test_packaged_copy_is_identical_to_the_committed_file() -> None:
    assert PACKAGED.read_bytes() == COMMITTED.read_bytes()


def test_unsc_2020(unsc: Electorate) -> None:
    assert unsc.name == "United Nations Security Council (2020)"
    assert unsc.required_yes == 9 and unsc.quorum is None
    assert unsc.codes == [
        "CHN", "FRA", "RUS", "GBR", "USA", "BEL", "DOM", "EST", "DEU", "IDN", "NER", "VCT", "ZAF", "TUN", "VNM",
    ]  # fmt: skip
    assert unsc.permanent == {"CHN", "FRA", "RUS", "GBR", "USA"}
    vct = unsc.get("VCT")
    assert vct is not None and vct.name == "Saint Vincent and the Grenadines"
    assert all(d.addresses == [f"{d.code.lower()}@delegations.example"] for d in unsc.delegation)
    assert all(not d.certificates for d in unsc.delegation)


def test_unsc_2020_names_its_members_in_french_as_the_councils_documents_do(unsc: Electorate) -> None:
    assert [d.name_in("fr") for d in unsc.delegation] == [
        "Chine", "France", "Fédération de Russie", "Royaume-Uni de Grande-Bretagne et d'Irlande du Nord",
        "États-Unis d'Amérique", "Belgique", "République dominicaine", "Estonie", "Allemagne", "Indonésie", "Niger",
        "Saint-Vincent-et-les Grenadines", "Afrique du Sud", "Tunisie", "Viet Nam",
    ]  # fmt: skip
    assert all(d.name_in("en") == d.name and d.name_in("es") == d.name for d in unsc.delegation)
    assert unsc.get("USA").label_in("fr") == "USA (États-Unis d'Amérique)"  # type: ignore[union-attr]


def test_eu_2026_names_its_members_in_french_as_the_union_does() -> None:
    eu = load_electorate(ROOT / "voting" / "data" / "eu-2026.toml")
    assert [d.name_in("fr") for d in eu.delegation] == [
        "Belgique", "Bulgarie", "Tchéquie", "Danemark", "Allemagne", "Estonie", "Irlande", "Grèce", "Espagne",
        "France", "Croatie", "Italie", "Chypre", "Lettonie", "Lituanie", "Luxembourg", "Hongrie", "Malte",
        "Pays-Bas", "Autriche", "Pologne", "Portugal", "Roumanie", "Slovénie", "Slovaquie", "Finlande", "Suède",
    ]  # fmt: skip
    assert eu.get("CZE").name == "Czechia"  # type: ignore[union-attr]


SNAPSHOT_BEFORE_NAMES = (
    '{"name":"Board","required_yes":null,"quorum":null,"observers":[],"rules":{},"delegation":[{"code":"FRA",'
    '"name":"France","permanent":true,"weight":null,"population":null,"addresses":["fra@delegations.example"],'
    '"certificates":[],"timezone":null,"language":"fr"}]}'
)
"""An electorate as a vote recorded it (and hashed it into its chain) before delegations could be named in other
languages."""


def test_a_snapshot_without_names_reads_and_is_written_as_before() -> None:
    snapshot = Electorate.model_validate_json(SNAPSHOT_BEFORE_NAMES)
    assert snapshot.model_dump_json() == SNAPSHOT_BEFORE_NAMES
    named = snapshot.model_copy(update={"delegation": [snapshot.delegation[0].model_copy(
        update={"names": {"es": "Francia"}})]})
    assert named.model_dump_json().endswith(',"language":"fr","names":{"es":"Francia"}}]}')
    assert Electorate.model_validate_json(named.model_dump_json()) == named


def test_committed_file_is_in_the_written_form(unsc: Electorate) -> None:
    assert dump_electorate(unsc) == COMMITTED.read_text()


# --- round trips -----------------------------------------------------------------------------------


def test_round_trip_with_certificates(
    tmp_path: Path, ca: pki.Identity, france: x509.Certificate, thunderbird: Path
) -> None:
    electorate = register_certificate(small(), "FRA", france, issued_by_secretariat=True, secretariat_held_key=True)
    alice = pki.load_pkcs12((thunderbird / "Alice.p12").read_bytes(), b"nss").certificate
    electorate = register_certificate(electorate, "NER", alice, issued_by_secretariat=False, secretariat_held_key=False)
    electorate = revoke(electorate, "NER", WHEN)
    path = tmp_path / "board.toml"
    save_electorate(path, electorate)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert load_electorate(path) == electorate
    text = path.read_text()
    assert "pem = '''\n-----BEGIN CERTIFICATE-----\n" in text
    assert "revoked_at = 2020-07-08 12:00:00+00:00" in text


def test_custody_of_a_key_is_kept_and_read_from_files_that_predate_it(
    tmp_path: Path, france: x509.Certificate
) -> None:
    certified = register_certificate(small(), "FRA", france, issued_by_secretariat=True, secretariat_held_key=False)
    text = dump_electorate(certified)
    assert "issued_by_secretariat = true\nsecretariat_held_key = false\n" in text
    assert load_electorate(write(tmp_path, text)) == certified
    earlier = load_electorate(write(tmp_path, text.replace("secretariat_held_key = false\n", "")))
    assert [c.secretariat_held_key for c in earlier.get("FRA").certificates] == [True]  # type: ignore[union-attr]


def test_save_replaces_the_file_atomically(tmp_path: Path) -> None:
    path = write(tmp_path, "old")
    save_electorate(path, small())
    assert load_electorate(path) == small()
    assert [p.name for p in tmp_path.iterdir()] == ["electorate.toml"]


def test_an_electorate_file_is_read_at_each_load_and_parsed_again_when_its_bytes_change(
        tmp_path: Path, france: x509.Certificate) -> None:
    """The service reads its electorate at every pass: a certificate registered or revoked counts from the next
    one, an unchanged file is not parsed again, and a file made invalid is refused however it was read before."""
    path = write(tmp_path, dump_electorate(small()))
    electorate = ElectorateFile(path)
    first = electorate.load()
    assert electorate.load() is first
    save_electorate(path, register_certificate(small(), "FRA", france, issued_by_secretariat=True,
                                               secretariat_held_key=False))
    registered = electorate.load()
    assert registered is not first and [len(d.certificates) for d in registered.delegation] == [1, 0]
    save_electorate(path, revoke(registered, "FRA", WHEN))
    assert all(c.revoked for c in electorate.load().delegation[0].certificates)
    path.write_text(dump_electorate(small()) + "quorum = 3\n")
    with pytest.raises(ConfigError, match="electorate.toml"):
        electorate.load()


@settings(max_examples=60, deadline=None)
@given(
    name=st.text(min_size=1, max_size=40),
    delegate_name=st.text(max_size=40),
    names=st.dictionaries(st.from_regex(r"[a-z]{2,3}", fullmatch=True).filter(lambda code: code != "en"),
                          st.text(min_size=1, max_size=40).filter(str.strip), max_size=3),
    required_yes=st.none() | st.integers(min_value=1, max_value=500),
    local=st.from_regex(r"[a-z0-9._+-]{1,12}", fullmatch=True),
)
def test_any_names_round_trip(name: str, delegate_name: str, names: dict[str, str], required_yes: int | None,
                              local: str) -> None:
    electorate = Electorate(
        name=name,
        required_yes=required_yes,
        delegation=[Delegation(code="X-1", name=delegate_name, names=names, addresses=[f"{local}@example.org"])],
    )
    assert parse_electorate(dump_electorate(electorate)) == electorate


# --- errors name the file and the key --------------------------------------------------------------

GOOD_DELEGATION = '[[delegation]]\ncode = "FRA"\nname = "France"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\ncolour = "blue"\n', r"electorate\.toml: colour: unknown key"),
        (GOOD_DELEGATION + 'colour = "blue"\n', r"delegation\[0\]\.colour: unknown key"),
        (GOOD_DELEGATION + '[[delegation]]\ncode = "fr"\nname = "x"\n', r"delegation\[1\]\.code: 'fr' does not"),
        (GOOD_DELEGATION + '[[delegation]]\nname = "x"\n', r"delegation\[1\]\.code: required key is missing"),
        (GOOD_DELEGATION + GOOD_DELEGATION, r"delegation: delegation FRA is listed twice"),
        (GOOD_DELEGATION + 'addresses = ["nobody"]\n', r"delegation\[0\]\.addresses: 'nobody' is not a mailbox"),
        (GOOD_DELEGATION + 'names = { french = "France" }\n',
         r"delegation\[0\]\.names: 'french' is not a language code: write a two- or three-letter code in lower case"),
        (GOOD_DELEGATION + 'names = { FR = "France" }\n', r"delegation\[0\]\.names: 'FR' is not a language code"),
        (GOOD_DELEGATION + 'names = { en = "France" }\n',
         r"delegation\[0\]\.names: en is the secretariat's language, in which the delegation's name is `name`"),
        (GOOD_DELEGATION + 'names = { fr = " " }\n', r"delegation\[0\]\.names: the name in fr is empty"),
        (GOOD_DELEGATION + 'names = "France"\n', r"delegation\[0\]\.names: Input should be a valid dictionary"),
        ("required_yes = 0\n", r"required_yes: Input should be greater than or equal to 1"),
        ('name = "x"\nrequired_yes = \n', r"invalid TOML: .*\(at line 2, column 16\)"),
        ("a = " + "[" * 5000 + "]" * 5000 + "\n", r"invalid TOML"),
    ],
)
def test_bad_file_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_electorate(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "\n" not in str(caught.value)


def test_certificate_pinned_to_two_delegations(tmp_path: Path, france: x509.Certificate) -> None:
    text = dump_electorate(register_certificate(small(), "FRA", france, issued_by_secretariat=True,
                                                secretariat_held_key=True))
    start = text.index("[[delegation.certificates]]")
    table = text[start : text.index("[[delegation]]", start)]
    path = write(tmp_path, text + table)
    with pytest.raises(ConfigError, match=r"certificate [0-9a-f]{16}… is registered to both FRA and NER"):
        load_electorate(path)


def test_pin_must_match_the_pem(tmp_path: Path, france: x509.Certificate) -> None:
    text = dump_electorate(register_certificate(small(), "FRA", france, issued_by_secretariat=True,
                                                secretariat_held_key=True))
    path = write(tmp_path, text.replace(pki.fingerprint(france), "0" * 64))
    with pytest.raises(ConfigError, match=r"delegation\[0\]\.certificates\[0\]\.sha256: does not match the pem"):
        load_electorate(path)
    path = write(tmp_path, text.replace("MII", "XXX", 1))
    with pytest.raises(ConfigError, match=r"delegation\[0\]\.certificates\[0\]\.pem: not a PEM certificate"):
        load_electorate(path)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="absent.toml: cannot read the electorate: No such file"):
        load_electorate(tmp_path / "absent.toml")
    (tmp_path / "latin1.toml").write_bytes(b'name = "Caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"latin1.toml: not UTF-8 text \(byte 11\)"):
        load_electorate(tmp_path / "latin1.toml")


# --- changes -------------------------------------------------------------------------------------


def test_register_pins_and_adds_mailboxes(france: x509.Certificate) -> None:
    before = small()
    after = register_certificate(before, "FRA", france, issued_by_secretariat=True, secretariat_held_key=True)
    assert before == small(), "the input is not changed"
    fra = after.get("FRA")
    assert fra is not None
    assert fra.addresses == ["fra@delegations.example", "pr.france@un.example"]
    assert [(c.sha256, c.issued_by_secretariat, c.revoked) for c in fra.certificates] == [
        (pki.fingerprint(france), True, False)
    ]
    assert pki.load_pem_certificate(fra.certificates[0].pem) == france
    assert register_certificate(after, "FRA", france, issued_by_secretariat=True, secretariat_held_key=True) == after


def test_register_refuses_a_certificate_of_another_delegation(france: x509.Certificate) -> None:
    electorate = register_certificate(small(), "FRA", france, issued_by_secretariat=True, secretariat_held_key=True)
    with pytest.raises(UsageError, match="already registered to FRA"):
        register_certificate(electorate, "NER", france, issued_by_secretariat=False, secretariat_held_key=False)


def test_register_refuses_an_unknown_code_or_a_certificate_without_mailbox(
    ca: pki.Identity, france: x509.Certificate
) -> None:
    with pytest.raises(UsageError, match="no delegation 'ZZZ'"):
        register_certificate(small(), "ZZZ", france, issued_by_secretariat=True, secretariat_held_key=True)
    with pytest.raises(UsageError, match="names no email address"):
        register_certificate(small(), "FRA", ca.certificate, issued_by_secretariat=False, secretariat_held_key=False)


def test_add_delegation_new_and_existing() -> None:
    added = add_delegation(small(), "EST", "Estonia", email="EST@Delegations.example", permanent=False)
    assert added.codes == ["FRA", "NER", "EST"]
    est = added.get("EST")
    assert est is not None and est.addresses == ["est@delegations.example"] and not est.permanent
    again = add_delegation(added, "EST", "ignored", email="est@delegations.example", permanent=True)
    assert again == added
    more = add_delegation(added, "EST", "ignored", email="mission@estonia.example", permanent=True)
    est = more.get("EST")
    assert est is not None and est.name == "Estonia" and not est.permanent
    assert est.addresses == ["est@delegations.example", "mission@estonia.example"]


@pytest.mark.parametrize(
    ("code", "email", "message"),
    [("est", "e@x.example", "'est' does not match"), ("EST", "nobody", "not a mailbox")],
)
def test_add_delegation_refuses_bad_values(code: str, email: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        add_delegation(small(), code, "Estonia", email=email, permanent=False)


def test_revoke_marks_every_certificate_and_keeps_earlier_times(ca: pki.Identity, france: x509.Certificate) -> None:
    electorate = register_certificate(small(), "FRA", france, issued_by_secretariat=True, secretariat_held_key=True)
    electorate = revoke(electorate, "FRA", WHEN)
    second = pki.issue_signing_certificate(ca, common_name="France", emails=["fra@x.example"], key_type="ec")
    electorate = register_certificate(electorate, "FRA", second.certificate, issued_by_secretariat=True,
                                      secretariat_held_key=True)
    later = WHEN + dt.timedelta(days=1)
    electorate = revoke(electorate, "FRA", later)
    fra = electorate.get("FRA")
    assert fra is not None
    assert [(c.revoked, c.revoked_at) for c in fra.certificates] == [(True, WHEN), (True, later)]
    with pytest.raises(UsageError, match="time zone"):
        revoke(electorate, "FRA", dt.datetime(2020, 7, 8))
    with pytest.raises(UsageError, match="no delegation"):
        revoke(electorate, "ZZZ", WHEN)


def test_trust_of(ca: pki.Identity, france: x509.Certificate, thunderbird: Path) -> None:
    alice = pki.load_pkcs12((thunderbird / "Alice.p12").read_bytes(), b"nss").certificate
    electorate = register_certificate(small(), "FRA", france, issued_by_secretariat=True, secretariat_held_key=True)
    electorate = register_certificate(electorate, "NER", alice, issued_by_secretariat=False, secretariat_held_key=False)
    electorate = revoke(electorate, "NER", WHEN)
    trust = trust_of(electorate, [ca.certificate])
    assert trust.anchors == (ca.certificate,)
    assert [(t.certificate, t.owner, t.revoked, t.chain_to_anchor) for t in trust.registered] == [
        (france, "FRA", False, True),
        (alice, "NER", True, False),
    ]


def test_trust_is_built_once_per_registrations_and_follows_each_change(
        ca: pki.Identity, france: x509.Certificate, thunderbird: Path) -> None:
    """The same registrations give the same trust; a revocation counts from its time on, whichever time came
    first; a certificate registered or revoked afterwards shows at once."""
    electorate = register_certificate(small(), "FRA", france, issued_by_secretariat=True, secretariat_held_key=True)
    assert trust_of(electorate, [ca.certificate], WHEN) is trust_of(electorate, [ca.certificate], WHEN)
    revoked = revoke(electorate, "FRA", WHEN)
    before, after = WHEN - dt.timedelta(seconds=1), WHEN + dt.timedelta(seconds=1)
    for at, expected in ((after, True), (before, False), (after, True), (None, True), (before, False)):
        assert [t.revoked for t in trust_of(revoked, [ca.certificate], at).registered] == [expected]
    assert [t.revoked for t in trust_of(electorate, [ca.certificate], after).registered] == [False]
    alice = pki.load_pkcs12((thunderbird / "Alice.p12").read_bytes(), b"nss").certificate
    more = register_certificate(electorate, "NER", alice, issued_by_secretariat=False, secretariat_held_key=False)
    assert [t.owner for t in trust_of(more, [ca.certificate], WHEN).registered] == ["FRA", "NER"]
    assert trust_of(more, [], WHEN).anchors == ()


# --- one delegation's certificate never shadows another's, through the command line -----------------


def certificate_for(key: pki.PrivateKey, public_key: object, email: str, *, issuer: x509.Name | None = None,
                    serial: int | None = None, subject_key_id: bytes | None = None) -> x509.Certificate:
    """A certificate signed by `key` that carries `public_key`, the issuer name, serial and key id asked for."""
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, email)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
        .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
    )
    if subject_key_id is not None:
        builder = builder.add_extension(x509.SubjectKeyIdentifier(subject_key_id), critical=False)
    return builder.sign(key, hashes.SHA256())


def signed_mail(identity: pki.Identity, sender: str) -> bytes:
    entity = sign_entity(b"Content-Type: text/plain\r\n\r\nWith the compliments of the mission.\r\n",
                         identity.key, identity.certificate)
    return f"From: {sender}\r\nTo: votes@secretariat.example\r\nSubject: note\r\n".encode() + entity


@pytest.fixture(scope="module")
def france_deployment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pki.Identity]:
    """A deployment whose France holds a secretariat-issued certificate, and that identity."""
    root = tmp_path_factory.mktemp("keys")
    assert voting("init", str(root / "d"), "--electorate", "unsc-2020").returncode == 0
    config = root / "d" / "config" / "voting.toml"
    issued = voting("--json", "--config", str(config), "keys", "issue", "FRA", "--email", "fra@delegations.example")
    assert issued.returncode == 0, issued.stderr
    p12 = json.loads(issued.stdout)
    return config, pki.load_pkcs12(Path(p12["pkcs12"]).read_bytes(), p12["password"].encode())


@pytest.mark.parametrize("shared", ["public key", "issuer and serial number", "subject key identifier"])
def test_keys_import_refuses_a_certificate_that_could_be_taken_for_another_delegations(
    tmp_path: Path, france_deployment: tuple[Path, pki.Identity], shared: str
) -> None:
    template, france = france_deployment
    shutil.copytree(template.parents[1], tmp_path / "d")
    config = str(tmp_path / "d" / "config" / "voting.toml")
    niger = pki.issue_signing_certificate(pki.create_ca("Niger CA", "Niger"), common_name="Niger",
                                          emails=["ner@delegations.example"])
    if shared == "public key":
        # Niger cannot sign with France's key, but a France-signed mail is public and "proves" that key.
        rogue = certificate_for(niger.key, france.certificate.public_key(), "ner@delegations.example")
        proof = signed_mail(france, "fra@delegations.example")
    elif shared == "issuer and serial number":
        rogue = certificate_for(niger.key, niger.key.public_key(), "ner@delegations.example",
                                issuer=france.certificate.issuer, serial=france.certificate.serial_number)
        proof = signed_mail(pki.Identity(niger.key, rogue), "ner@delegations.example")
    else:
        france_ski = france.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        rogue = certificate_for(niger.key, niger.key.public_key(), "ner@delegations.example",
                                subject_key_id=france_ski)
        proof = signed_mail(pki.Identity(niger.key, rogue), "ner@delegations.example")
    (tmp_path / "rogue.pem").write_text(pki.certificate_pem(rogue))
    (tmp_path / "proof.eml").write_bytes(proof)
    electorate_file = tmp_path / "d" / "config" / "electorates" / "unsc-2020.toml"
    before = electorate_file.read_bytes()
    refused = voting("--config", config, "keys", "import", "NER", str(tmp_path / "rogue.pem"),
                     "--proof", str(tmp_path / "proof.eml"))
    assert refused.returncode == 2
    assert f"has the same {shared} as FRA's certificate" in refused.stderr
    assert "NER" in refused.stderr and refused.stderr.count("\n") == 1
    assert electorate_file.read_bytes() == before

    # The same pair written into the electorate by hand is a configuration error naming both delegations.
    electorate = load_electorate(electorate_file)
    ner = electorate.get("NER")
    assert ner is not None
    ner.certificates.append(RegisteredCertificate(sha256=pki.fingerprint(rogue), pem=pki.certificate_pem(rogue)))
    electorate_file.write_text(dump_electorate(electorate))
    listed = voting("--config", config, "keys", "list")
    assert listed.returncode == 2
    assert re.search(rf"NER's certificate [0-9a-f]{{16}}… has the same {shared} as FRA's certificate", listed.stderr)


def test_keys_import_requires_proof_of_possession(tmp_path: Path, france_deployment: tuple[Path, pki.Identity]) -> None:
    template, france = france_deployment
    shutil.copytree(template.parents[1], tmp_path / "d")
    config = str(tmp_path / "d" / "config" / "voting.toml")
    niger = pki.issue_signing_certificate(pki.create_ca("Niger CA", "Niger"), common_name="Niger",
                                          emails=["ner@delegations.example"])
    (tmp_path / "ner.pem").write_text(pki.certificate_pem(niger.certificate))
    bare = voting("--config", config, "keys", "import", "NER", str(tmp_path / "ner.pem"))
    assert bare.returncode == 2 and "--proof" in bare.stderr and "openssl cms -sign" in bare.stderr
    (tmp_path / "france.eml").write_bytes(signed_mail(france, "fra@delegations.example"))
    (tmp_path / "plain.eml").write_bytes(b"From: ner@delegations.example\r\nSubject: hi\r\n\r\nunsigned\r\n")
    for other in ("france.eml", "plain.eml"):
        wrong = voting("--config", config, "keys", "import", "NER", str(tmp_path / "ner.pem"),
                       "--proof", str(tmp_path / other))
        assert wrong.returncode == 2 and ("proves nothing" in wrong.stderr or "another key" in wrong.stderr)
    listing = json.loads(voting("--json", "--config", config, "keys", "list").stdout)
    assert next(row for row in listing if row["code"] == "NER")["certificates"] == []
    (tmp_path / "ner.eml").write_bytes(signed_mail(niger, "ner@delegations.example"))
    proven = voting("--config", config, "keys", "import", "NER", str(tmp_path / "ner.pem"),
                    "--proof", str(tmp_path / "ner.eml"))
    assert proven.returncode == 0, proven.stderr
