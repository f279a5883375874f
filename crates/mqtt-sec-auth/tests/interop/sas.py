"""Azure SAS tokens with Python's standard library, as Azure's documentation
writes them (quote_plus, HMAC-SHA256, urlencode). Driven by tests/sas.rs.

mint:   {"resource", "key", "expiry", "policy"} -> the token
verify: {"token", "key"} -> {"valid": bool, "resource": str, "expiry": int}
"""
import json
import sys
from base64 import b64decode, b64encode
from hashlib import sha256
from hmac import HMAC, compare_digest
from urllib.parse import parse_qs, quote_plus, urlencode


def mint(r):
    sr = quote_plus(r["resource"])
    sign = "%s\n%d" % (sr, r["expiry"])
    sig = b64encode(HMAC(b64decode(r["key"]), sign.encode(), sha256).digest())
    raw = {"sr": r["resource"], "sig": sig, "se": str(r["expiry"])}
    if r.get("policy"):
        raw["skn"] = r["policy"]
    return "SharedAccessSignature " + urlencode(raw)


def verify(r):
    fields = r["token"][len("SharedAccessSignature "):]
    parts = dict(p.split("=", 1) for p in fields.split("&"))
    sign = "%s\n%s" % (parts["sr"], parts["se"])
    expected = b64encode(HMAC(b64decode(r["key"]), sign.encode(), sha256).digest()).decode()
    given = parse_qs("sig=" + parts["sig"])["sig"][0]
    resource = parse_qs("sr=" + parts["sr"])["sr"][0]
    return {"valid": compare_digest(expected, given), "resource": resource, "expiry": int(parts["se"])}


if __name__ == "__main__":
    request = json.load(sys.stdin)
    json.dump({"mint": mint, "verify": verify}[sys.argv[1]](request), sys.stdout)
