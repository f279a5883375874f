"""Interop with independent COSE implementations, driven by tests/interop_cose.rs.

verify: reads {"public_key": hex, "cases": [...]} and checks every envelope two
        ways: with pycose (external_aad = the topic binding) and by rebuilding
        the Sig_structure with cbor2 and verifying with cryptography's Ed25519.
        Prints one JSON result per case.
sign:   reads {"secret_key": hex, "kid": str, "cases": [...]} and writes
        envelopes of our profile made by pycose and, separately, by
        cbor2 + cryptography.
"""
import json
import sys

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.exceptions import InvalidSignature
from pycose.algorithms import EdDSA
from pycose.headers import KID, Algorithm
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message


def external_aad(topic):
    # Written from docs/envelope.md, not taken from the Rust code.
    return cbor2.dumps(["mqtt-sec-sign/1", topic])


def pycose_verify(public_key, envelope, topic, detached_payload):
    msg = Sign1Message.decode(envelope)
    msg.key = OKPKey(crv=Ed25519, x=public_key)
    msg.external_aad = external_aad(topic)
    if detached_payload is not None:
        return msg.verify_signature(detached_payload=detached_payload)
    return msg.verify_signature()


def cbor2_verify(public_key, envelope, topic, detached_payload):
    tag = cbor2.loads(envelope)
    assert isinstance(tag, cbor2.CBORTag) and tag.tag == 18, "not tag 18"
    protected, unprotected, payload, signature = tag.value
    assert unprotected == {}, "unprotected header not empty"
    header = cbor2.loads(protected)
    assert header[1] == -8, "alg is not EdDSA"
    claims = header[15]
    if detached_payload is not None:
        assert payload is None, "detached envelope carries a payload"
        payload = detached_payload
    tbs = cbor2.dumps(["Signature1", protected, external_aad(topic), payload])
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, tbs)
    except InvalidSignature:
        return False, None
    # The signed retain intent (docs/envelope.md): true, or absent for a live message.
    retained = header.get("mqtt-retain", False)
    assert retained in (True, False), "mqtt-retain is not a boolean"
    return True, {"kid": header[4].decode(), "iat": claims[6], "seq": int.from_bytes(claims[7], "big"),
                  "retained": retained}


def verify(request):
    public_key = bytes.fromhex(request["public_key"])
    results = []
    for case in request["cases"]:
        envelope = bytes.fromhex(case["envelope"])
        detached = bytes.fromhex(case["detached_payload"]) if case.get("detached_payload") is not None else None
        ok_cbor2, header = cbor2_verify(public_key, envelope, case["topic"], detached)
        results.append({
            "pycose": bool(pycose_verify(public_key, envelope, case["topic"], detached)),
            "cbor2": ok_cbor2,
            "header": header,
        })
    return results


def sign(request):
    secret = bytes.fromhex(request["secret_key"])
    kid = request["kid"].encode()
    key = OKPKey(crv=Ed25519, d=secret)
    raw_key = Ed25519PrivateKey.from_private_bytes(secret)
    out = []
    for case in request["cases"]:
        claims = {6: case["iat"], 7: case["seq"].to_bytes(8, "big")}
        payload = case["payload"].encode()
        phdr = {Algorithm: EdDSA, KID: kid, 15: claims}
        retain = {"mqtt-retain": True} if case.get("retained") else {}
        phdr.update(retain)
        msg = Sign1Message(phdr=phdr, uhdr={}, payload=payload)
        msg.key = key
        msg.external_aad = external_aad(case["topic"])
        by_pycose = msg.encode(tag=True)

        protected = cbor2.dumps({1: -8, 4: kid, 15: {6: case["iat"], 7: (case["seq"] + 1).to_bytes(8, "big")}, **retain})
        tbs = cbor2.dumps(["Signature1", protected, external_aad(case["topic"]), payload])
        by_cbor2 = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, raw_key.sign(tbs)]))
        out.append({"pycose": by_pycose.hex(), "cbor2": by_cbor2.hex()})
    return out


if __name__ == "__main__":
    request = json.load(sys.stdin)
    result = {"verify": verify, "sign": sign}[sys.argv[1]](request)
    json.dump(result, sys.stdout)
