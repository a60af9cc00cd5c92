"""Opening a CMS envelope addressed to the secretariat (enveloped-data and authenveloped-data, RFC 5652 and 5083).

The content key comes from the secretariat's identity (RSA key transport or
ECDH key agreement) or, in an audit, from the bundle. Every failure is
`Reason.ENCRYPTED`: which step failed is never told (docs/smime.md,
"Encrypted replies"); `voting.smime.verify` keeps that one answer for
anything an unauthenticated envelope yields.
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import algos, cms, core
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import padding as symmetric_padding
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

from voting.pki import Identity
from voting.reasons import Reason, Rejected
from voting.smime.cms import DIGESTS, MALFORMED_DER, OID_DATA, SignerId, matches, signer_identifier
from voting.smime.der import only


@dataclass(frozen=True)
class ContentKey:
    """The content-encryption key of one message, as disclosed in an audit bundle.

    It opens that message's envelope and nothing else, so an auditor can check
    that the decrypted entity the bundle carries is what was encrypted, without
    the secretariat's private key.
    """

    key: bytes


@dataclass(frozen=True)
class Decrypted:
    """An envelope opened: the entity inside (as decrypted, not canonicalised) and the key that opened it."""

    entity: bytes
    content_key: bytes
    authenticated: bool
    """AES-GCM (authenveloped-data) proves the ciphertext intact; AES-CBC (enveloped-data) proves nothing."""


_OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
_OID_RSA_PKCS1 = "1.2.840.113549.1.1.1"
_OID_RSA_OAEP = "1.2.840.113549.1.1.7"
_OID_MGF1 = "1.2.840.113549.1.1.8"
_OID_P_SPECIFIED = "1.2.840.113549.1.1.9"
# RFC 5753 ephemeral-static ECDH: the X9.63 KDF digest of each key agreement
# scheme (for the prime curves accepted here the cofactor is 1, so the
# cofactor schemes compute the same shared secret).
_ECDH_KDF: dict[str, type[hashes.HashAlgorithm]] = {
    "1.3.133.16.840.63.0.2": hashes.SHA1,
    "1.3.132.1.11.0": hashes.SHA224,
    "1.3.132.1.11.1": hashes.SHA256,
    "1.3.132.1.11.2": hashes.SHA384,
    "1.3.132.1.11.3": hashes.SHA512,
    "1.3.133.16.840.63.0.3": hashes.SHA1,
    "1.3.132.1.14.0": hashes.SHA224,
    "1.3.132.1.14.1": hashes.SHA256,
    "1.3.132.1.14.2": hashes.SHA384,
    "1.3.132.1.14.3": hashes.SHA512,
}
_AES_WRAP = {"2.16.840.1.101.3.4.1.5": 16, "2.16.840.1.101.3.4.1.25": 24, "2.16.840.1.101.3.4.1.45": 32}
_AES_CBC = {"2.16.840.1.101.3.4.1.2": 16, "2.16.840.1.101.3.4.1.22": 24, "2.16.840.1.101.3.4.1.42": 32}
_AES_GCM = {"2.16.840.1.101.3.4.1.6": 16, "2.16.840.1.101.3.4.1.26": 24, "2.16.840.1.101.3.4.1.46": 32}


class _GcmParameters(core.Sequence):
    """RFC 5084 GCMParameters."""

    _fields = [("aes_nonce", core.OctetString), ("aes_icvlen", core.Integer, {"default": 12})]


class _EccCmsSharedInfo(core.Sequence):
    """RFC 5753 ECC-CMS-SharedInfo, the X9.63 KDF's shared info."""

    _fields = [
        ("key_info", cms.KeyEncryptionAlgorithm),
        ("entity_u_info", core.OctetString, {"explicit": 0, "optional": True}),
        ("supp_pub_info", core.OctetString, {"explicit": 2}),
    ]


class _Undecryptable(Exception):
    """Internal: the envelope is not for us, or does not open; always ends as `Reason.ENCRYPTED`."""


def _oaep(parameters: algos.RSAESOAEPParams | core.Void) -> padding.OAEP:
    """RSAES-OAEP parameters as sent (their defaults are SHA-1, harmless in OAEP)."""
    params = algos.RSAESOAEPParams() if isinstance(parameters, core.Void) else parameters
    hash_oid = str(params["hash_algorithm"]["algorithm"].dotted)
    mask = params["mask_gen_algorithm"]
    mask_oid = str(mask["parameters"]["algorithm"].dotted)
    source = params["p_source_algorithm"]
    if str(mask["algorithm"].dotted) != _OID_MGF1 or str(source["algorithm"].dotted) != _OID_P_SPECIFIED:
        raise _Undecryptable
    if hash_oid not in DIGESTS or mask_oid not in DIGESTS:
        raise _Undecryptable
    label = source["parameters"].native or None
    return padding.OAEP(mgf=padding.MGF1(DIGESTS[mask_oid][1]()), algorithm=DIGESTS[hash_oid][1](), label=label)


def _key_transport(recipient: cms.KeyTransRecipientInfo, key: rsa.RSAPrivateKey) -> bytes:
    algorithm = recipient["key_encryption_algorithm"]
    oid = str(algorithm["algorithm"].dotted)
    if oid == _OID_RSA_PKCS1:
        scheme: padding.AsymmetricPadding = padding.PKCS1v15()
    elif oid == _OID_RSA_OAEP:
        scheme = _oaep(algorithm["parameters"])
    else:
        raise _Undecryptable
    return key.decrypt(recipient["encrypted_key"].native, scheme)


def _key_agreement(
    recipient: cms.KeyAgreeRecipientInfo, encrypted_key: bytes, key: ec.EllipticCurvePrivateKey
) -> bytes:
    """RFC 5753 ephemeral-static ECDH: X9.63 KDF over the shared secret, then AES key unwrap."""
    originator = recipient["originator"]
    algorithm = recipient["key_encryption_algorithm"]
    kdf_hash = _ECDH_KDF.get(str(algorithm["algorithm"].dotted))
    if originator.name != "originator_key" or kdf_hash is None or isinstance(algorithm["parameters"], core.Void):
        raise _Undecryptable
    wrap = algorithm["parameters"].parse(cms.KeyEncryptionAlgorithm)
    wrap_length = _AES_WRAP.get(str(wrap["algorithm"].dotted))
    if wrap_length is None:
        raise _Undecryptable
    point = originator.chosen["public_key"].native
    ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(key.curve, point if isinstance(point, bytes) else b"")
    ukm = recipient["ukm"]
    shared_info = _EccCmsSharedInfo(
        {
            "key_info": wrap,
            "entity_u_info": None if isinstance(ukm, core.Void) else ukm.native,
            "supp_pub_info": (wrap_length * 8).to_bytes(4, "big"),
        }
    ).dump()
    kek = X963KDF(kdf_hash(), wrap_length, shared_info).derive(key.exchange(ec.ECDH(), ephemeral))
    return aes_key_unwrap(kek, encrypted_key)


def _recipient(rid: cms.RecipientIdentifier | cms.KeyAgreementRecipientIdentifier) -> SignerId:
    """A recipient identifier, read as a signer identifier is; a RecipientKeyIdentifier by its key identifier."""
    if rid.name == "r_key_id":
        return SignerId(key_id=bytes(rid.chosen[0].native))
    encoded = rid.dump()
    return signer_identifier(encoded, only(encoded, 0, len(encoded)))


def _content_encryption_key(recipients: cms.RecipientInfos, identity: Identity) -> bytes:
    """The key wrapped for our certificate; anything addressed to someone else is not for us."""
    key = identity.key
    for recipient in recipients:
        info = recipient.chosen
        if recipient.name == "ktri" and isinstance(key, rsa.RSAPrivateKey):
            if matches(_recipient(info["rid"]), identity.certificate):
                return _key_transport(info, key)
        elif recipient.name == "kari" and isinstance(key, ec.EllipticCurvePrivateKey):
            for encrypted in info["recipient_encrypted_keys"]:
                if matches(_recipient(encrypted["rid"]), identity.certificate):
                    return _key_agreement(info, encrypted["encrypted_key"].native, key)
    raise _Undecryptable


def _decrypt_content(algorithm: algos.EncryptionAlgorithm, key: bytes, ciphertext: bytes,
                     mac: bytes | None, authenticated: bytes) -> bytes:
    """AES-CBC for enveloped-data, AES-GCM for authenveloped-data (RFC 5083/5084)."""
    oid = str(algorithm["algorithm"].dotted)
    if mac is None and _AES_CBC.get(oid) == len(key):
        iv = algorithm["parameters"].native
        decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        unpadder = symmetric_padding.PKCS7(128).unpadder()
        return unpadder.update(decryptor.update(ciphertext) + decryptor.finalize()) + unpadder.finalize()
    if mac is not None and _AES_GCM.get(oid) == len(key):
        parameters = algorithm["parameters"].parse(_GcmParameters)
        if parameters["aes_icvlen"].native != len(mac):
            raise _Undecryptable
        mode = modes.GCM(parameters["aes_nonce"].native, mac, min_tag_length=12)
        decryptor = Cipher(algorithms.AES(key), mode).decryptor()
        decryptor.authenticate_additional_data(authenticated)
        return decryptor.update(ciphertext) + decryptor.finalize()
    raise _Undecryptable


def open_envelope(der: bytes, decryption: Identity | ContentKey) -> Decrypted:
    """The entity inside the ContentInfo of an enveloped-data or authenveloped-data, or `Reason.ENCRYPTED`."""
    try:
        info = cms.ContentInfo.load(der, strict=True)
        envelope = info["content"]
        if str(info["content_type"].dotted) == _OID_ENVELOPED_DATA:
            content_info, mac, attributes = envelope["encrypted_content_info"], None, core.Void()
        else:
            content_info, mac, attributes = (
                envelope["auth_encrypted_content_info"], envelope["mac"].native, envelope["auth_attrs"]
            )
        ciphertext = content_info["encrypted_content"]
        if str(content_info["content_type"].dotted) != OID_DATA or isinstance(ciphertext, core.Void):
            raise _Undecryptable
        key = (
            decryption.key if isinstance(decryption, ContentKey)
            else _content_encryption_key(envelope["recipient_infos"], decryption)
        )
        # The authenticated attributes are authenticated as a SET OF, not as the [1] IMPLICIT field.
        authenticated = b"" if isinstance(attributes, core.Void) else b"\x31" + attributes.dump()[1:]
        entity = _decrypt_content(
            content_info["content_encryption_algorithm"], key, ciphertext.native, mac, authenticated
        )
    except (_Undecryptable, Rejected, InvalidTag, InvalidUnwrap, UnsupportedAlgorithm, *MALFORMED_DER):
        raise Rejected(Reason.ENCRYPTED) from None
    return Decrypted(entity=entity, content_key=key, authenticated=mac is not None)
