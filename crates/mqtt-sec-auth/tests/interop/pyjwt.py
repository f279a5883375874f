"""JWT interop with PyJWT (and cryptography for the keys). Driven by
tests/jwt_interop.rs.

sign:   {"sub", "aud", "iss", "now"} -> {"jwks": {"keys": [...]}, "thumbprints": {kid: rfc7638},
        "tokens": [{"alg", "kid", "token", "case"}]}
verify: {"tokens": [{"alg", "token", "jwk"}], "aud", "iss"} -> [{"valid", "claims" | "error"}]
"""
import base64
import hashlib
import json
import sys

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(jwk):
    """RFC 7638, written out independently of both libraries."""
    required = {"RSA": ["e", "kty", "n"], "EC": ["crv", "kty", "x", "y"],
                "OKP": ["crv", "kty", "x"], "oct": ["k", "kty"]}[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in required}, separators=(",", ":"), sort_keys=True)
    return b64(hashlib.sha256(canonical.encode()).digest())


def sign(r):
    secret = b"a PyJWT HS256 secret that is long enough"
    keys = {
        "EdDSA": (ed25519.Ed25519PrivateKey.generate(), OKPAlgorithm),
        "ES256": (ec.generate_private_key(ec.SECP256R1()), ECAlgorithm),
        "RS256": (rsa.generate_private_key(public_exponent=65537, key_size=2048), RSAAlgorithm),
    }
    jwks, thumbprints, tokens = [], {}, []
    now = r["now"]
    good = {"sub": r["sub"], "aud": r["aud"], "iss": r["iss"], "iat": now - 5, "exp": now + 300}
    for alg, (private, algorithm) in keys.items():
        jwk = json.loads(algorithm.to_jwk(private.public_key()))
        kid = "py-" + alg.lower()
        thumbprints[kid] = thumbprint(jwk)
        jwk["kid"] = kid
        jwks.append(jwk)
        tokens.append({"alg": alg, "kid": kid, "case": "good",
                       "token": jwt.encode(good, private, algorithm=alg, headers={"kid": kid})})
    oct_jwk = json.loads(HMACAlgorithm.to_jwk(secret))
    thumbprints["py-hs256"] = thumbprint(oct_jwk)
    oct_jwk["kid"] = "py-hs256"
    jwks.append(oct_jwk)
    tokens.append({"alg": "HS256", "kid": "py-hs256", "case": "good",
                   "token": jwt.encode(good, secret, algorithm="HS256", headers={"kid": "py-hs256"})})
    private = keys["ES256"][0]
    for case, claims in [
        ("expired", dict(good, iat=now - 400, exp=now - 100)),
        ("wrong_aud", dict(good, aud="someone-else")),
        ("wrong_iss", dict(good, iss="evil")),
        ("not_yet_valid", dict(good, nbf=now + 120)),
        ("other_client", dict(good, sub="intruder")),
    ]:
        tokens.append({"alg": "ES256", "kid": "py-es256", "case": case,
                       "token": jwt.encode(claims, private, algorithm="ES256",
                                           headers={"kid": "py-es256"})})
    # PyJWT writes unsigned tokens when asked to.
    tokens.append({"alg": "none", "kid": "py-es256", "case": "alg_none",
                   "token": jwt.encode(good, None, algorithm="none", headers={"kid": "py-es256"})})
    return {"jwks": {"keys": jwks}, "thumbprints": thumbprints, "tokens": tokens}


def verify(r):
    out = []
    for t in r["tokens"]:
        try:
            key = jwt.PyJWK(t["jwk"], algorithm=t["alg"]).key
            claims = jwt.decode(t["token"], key, algorithms=[t["alg"]], audience=r["aud"],
                                issuer=r["iss"], options={"require": ["exp", "iat", "sub"]})
            out.append({"valid": True, "claims": claims})
        except Exception as e:  # noqa: BLE001 - report every refusal
            out.append({"valid": False, "error": type(e).__name__})
    return out


if __name__ == "__main__":
    request = json.load(sys.stdin)
    json.dump({"sign": sign, "verify": verify}[sys.argv[1]](request), sys.stdout)
