"""S/MIME on raw message bytes, one module per stage.

`entity` finds the signed entity of a message, `cms` reads the CMS structures
(with `der`, a reader of BER in place), `decrypt` opens envelopes addressed to
the secretariat, `verify` checks the signature, its signer and the From header,
and `sign` makes signed mail.
"""
