#!/usr/bin/python3
"""Writes the hand-written seeds of fuzz_jwt, fuzz_proto, fuzz_http and
fuzz_diff into tests/fuzz/corpus/<target>/, and the JWKS of the fuzz
provider (tests/fuzz/jwt/fuzz.jwks.json) whose private keys sign them.

Run once with Debian's python3 (python3-cryptography); it makes new RSA and
EC keys each time, so the JWKS and the tokens signed with them are
committed together. The other keys are public fixtures: the RFC 7515
keys of tests/fixtures/jwt (A.1 HS256, A.3 ES256, whose private part the
RFC prints) and the demo app's HS256 key (examples/demo/keys).

Seeds have descriptive names; the corpus files named by a SHA-1 are what
libFuzzer found (tests/fuzz/run.sh keeps both apart).

    /usr/bin/python3 tests/fuzz/make_seeds.py [jwt] [server] [diff]
"""
import base64
import hashlib
import hmac
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
from herald_testlib import Issuer, b64url  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519  # noqa: E402

CORPUS = os.path.join(HERE, "corpus")
FOREVER = 4102444800  # 2100-01-01: tokens in seeds must not expire
NOW = 1700000000  # fuzz_jwt's default current time (mode byte 0)
ADMIN_KEY = "hk_fuzz-admin-key"  # FZ_ADMIN_KEY in fuzz_server.h


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def b64decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def fixture_key(name):
    with open(os.path.join(ROOT, "tests", "fixtures", "jwt", name)) as f:
        return json.load(f)


def issuer_with_key(issuer, audience, alg, key, kid):
    """An Issuer of herald_testlib that signs with a key given instead of one it makes."""
    i = Issuer(issuer, audience, "HS256")
    i.alg, i.key, i.kid = alg, key, kid
    return i


def token(signer, subject, **claims):
    """signer.token (an Issuer), valid from NOW until 2100 unless the claims say otherwise."""
    claims.setdefault("iat", NOW - 10)
    claims.setdefault("exp", FOREVER)
    return signer.token(subject, **claims)


def hs256(key, header, claims):
    """A token with exactly this header and these claims, signed with HMAC-SHA256."""
    signing = b64url(json.dumps(header)) + "." + b64url(json.dumps(claims))
    return signing + "." + b64url(hmac.new(key, signing.encode(), hashlib.sha256).digest())


# ---- keys ------------------------------------------------------------------

# RFC 7515 A.3's P-256 key: the private part the RFC prints, for the public one in the fixtures.
RFC_A3_D = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"


def rfc_keys():
    a1 = issuer_with_key("joe", "herald-test", "HS256", b64decode(fixture_key("rfc7515-a1.jwk.json")["k"]), "a1")
    d = ec.derive_private_key(int.from_bytes(b64decode(RFC_A3_D), "big"), ec.SECP256R1())
    a3 = issuer_with_key("joe", "herald-test", "ES256", d, "a3")
    pub = fixture_key("rfc7515-a3.jwk.json")
    if a3.jwk()["x"] != pub["x"] or a3.jwk()["y"] != pub["y"]:
        raise SystemExit("RFC_A3_D is not the private half of rfc7515-a3.jwk.json")
    return a1, a3


def fuzz_keys():
    """New RSA and EC keys for issuer https://fuzz.herald.invalid; writes their JWKS."""
    rsa_iss = Issuer("https://fuzz.herald.invalid", "herald-fuzz", "RS256")
    ec_iss = Issuer("https://fuzz.herald.invalid", "herald-fuzz", "ES256")
    rsa_iss.kid, ec_iss.kid = "fuzz-rsa", "fuzz-ec"
    os.makedirs(os.path.join(HERE, "jwt"), exist_ok=True)
    with open(os.path.join(HERE, "jwt", "fuzz.jwks.json"), "w") as f:
        json.dump({"keys": [rsa_iss.jwk(), ec_iss.jwk()]}, f, indent=1)
        f.write("\n")
    return rsa_iss, ec_iss


def demo_key():
    with open(os.path.join(ROOT, "examples", "demo", "keys", "demo.jwks.json")) as f:
        k = json.load(f)["keys"][0]
    return issuer_with_key("https://demo.herald.invalid", "herald-demo", "HS256", b64decode(k["k"]), k["kid"])


# ---- fuzz_jwt ----------------------------------------------------------------

def jwt_seeds():
    a1, a3 = rfc_keys()
    rsa_iss, ec_iss = fuzz_keys()
    raw = lambda now_index, tok: bytes([now_index << 1]) + tok.encode()
    signed = lambda now_index, header, claims: (bytes([(now_index << 1) | 1]) + json.dumps(header).encode()
                                                + b"\n" + json.dumps(claims).encode())
    good = {"iss": "joe", "aud": "herald-test", "sub": "user|1", "iat": NOW - 10, "exp": FOREVER}
    seeds = {
        "valid-rs256": raw(0, token(rsa_iss, "user|rsa", email="rsa@example.com", groups=["a", "b"])),
        "valid-es256": raw(0, token(ec_iss, "user|ec", name="Ec", email_verified="true")),
        "valid-es256-rfc-key": raw(0, token(a3, "user|a3")),
        "valid-hs256-rfc-key": raw(0, token(a1, "user|a1", picture="https://p.invalid/a.png", updated_at=1.5e9)),
        "valid-hs256-second-audience": raw(0, hs256(a1.key, {"alg": "HS256", "kid": "a1"},
                                                    dict(good, iss="https://fuzz.herald.invalid", aud=["x", "herald-fuzz-hs"]))),
        "valid-hs256-no-kid": raw(0, hs256(a1.key, {"alg": "HS256"}, good)),
        "expired": raw(0, token(rsa_iss, "user|old", exp=NOW - 3600)),
        "expired-within-leeway": raw(0, token(a1, "user|late", exp=NOW - 30)),
        "not-yet-valid": raw(0, token(ec_iss, "user|early", nbf=NOW + 3600)),
        "issued-in-the-future": raw(0, token(a1, "user|future", iat=NOW + 3600)),
        "wrong-audience": raw(0, token(rsa_iss, "user|aud", aud="someone-else")),
        "unknown-issuer": raw(0, token(rsa_iss, "user|iss", iss="https://evil.invalid")),
        "unknown-kid": raw(0, hs256(a1.key, {"alg": "HS256", "kid": "nope"}, good)),
        "no-subject": raw(0, hs256(a1.key, {"alg": "HS256", "kid": "a1"}, dict(good, sub=""))),
        "no-expiry": raw(0, hs256(a1.key, {"alg": "HS256", "kid": "a1"}, {k: v for k, v in good.items() if k != "exp"})),
        "alg-none": raw(0, b64url(json.dumps({"alg": "none"})) + "." + b64url(json.dumps(good)) + "."),
        "alg-none-with-signature": raw(0, b64url(json.dumps({"alg": "nOnE"})) + "." + b64url(json.dumps(good)) + ".c2ln"),
        "alg-unsupported": raw(0, hs256(a1.key, {"alg": "HS512", "kid": "a1"}, good)),
        "crit-header": raw(0, hs256(a1.key, {"alg": "HS256", "kid": "a1", "crit": ["exp"]}, good)),
        "jwk-header-ignored": raw(0, hs256(a1.key, {"alg": "HS256", "kid": "a1", "jwk": {"kty": "oct", "k": "AAAA"}}, good)),
        # Key confusion: HS256 "signed" with the RSA key's public modulus, naming the RSA key.
        "key-confusion-hs256-with-rsa-modulus": raw(0, hs256(b64decode(fixture_key("rfc7515-a2.jwk.json")["n"]),
                                                             {"alg": "HS256", "kid": "a2"}, good)),
        "hs256-not-allowed-for-issuer": raw(0, hs256(a1.key, {"alg": "HS256"}, dict(good, iss="https://fuzz.herald.invalid", aud="herald-fuzz"))),
        "bad-signature": raw(0, token(rsa_iss, "user|sig")[:-4] + "AAAA"),
        "two-parts": raw(0, "eyJhbGciOiJIUzI1NiJ9.e30"),
        "padding": raw(0, token(a1, "user|pad") + "=="),
        "not-json-header": raw(0, b64url("not json") + "." + b64url("{}") + ".AAAA"),
        "signed-claims-of-every-type": signed(0, {"alg": "HS256", "kid": "a1"},
                                              dict(good, aud=["herald-test"], nbf=NOW, email_verified=True, updated_at="2024",
                                                   subject="spoof", tokenIdentifier="spoof", custom={"a": [1, None]})),
        "signed-exp-not-a-number": signed(0, {"alg": "HS256"}, dict(good, exp="tomorrow")),
        "signed-int64-exp": signed(0, {"alg": "HS256"}, dict(good, exp={"$integer": "AAAAAAAAAEA="})),
        "signed-no-leeway-provider": signed(4, {"alg": "HS256"}, dict(good, iss="https://fuzz.herald.invalid", aud="herald-fuzz-hs", exp=FOREVER)),
        "signed-now-is-nan": signed(6, {"alg": "HS256"}, good),
        "signed-not-json": bytes([1]) + b"{\"alg\":\"HS256\"}\n[1,2,",
    }
    for name in ("rfc7515-a1.jws", "rfc7515-a2.jws", "rfc7515-a3.jws", "rfc7515-a5.jws", "rfc7519-3.1.jws"):
        with open(os.path.join(ROOT, "tests", "fixtures", "jwt", name)) as f:
            seeds["rfc-" + name[:-4]] = raw(1, f.read().strip())
    for name, data in seeds.items():
        write("fuzz_jwt", name, data)
    eddsa_seeds()


# RFC 8037 A.1's Ed25519 key: the private part the RFC prints, for tests/fixtures/jwt/rfc8037-a.jwk.json.
RFC_8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"


def eddsa_seeds():
    """EdDSA seeds of fuzz_jwt, signed with RFC 8037's key (Ed25519 signatures are deterministic,
    so these files come out the same each time and need no new keys)."""
    ed = Issuer("https://fuzz.herald.invalid", "herald-fuzz-eddsa", "EdDSA")
    ed.key, ed.kid = ed25519.Ed25519PrivateKey.from_private_bytes(b64decode(RFC_8037_D)), "rfc8037"
    if ed.jwk()["x"] != fixture_key("rfc8037-a.jwk.json")["x"]:
        raise SystemExit("RFC_8037_D is not the private half of rfc8037-a.jwk.json")
    raw = lambda tok: bytes([0]) + tok.encode()
    good = token(ed, "user|ed", email="ed@example.com")
    head, body, sig = good.split(".")
    sig_bytes = b64decode(sig)
    with open(os.path.join(ROOT, "tests", "fixtures", "jwt", "rfc8037-a4.jws")) as f:
        rfc = f.read().strip()

    def signed(header, claims=None):
        signing = b64url(json.dumps(header)) + "." + (b64url(json.dumps(claims)) if claims else body)
        return signing + "." + b64url(ed.key.sign(signing.encode()))
    claims = {"iss": ed.issuer, "aud": ed.audience, "sub": "s", "iat": NOW - 10, "exp": FOREVER}
    seeds = {
        "valid-eddsa-rfc8037-key": raw(good),
        "valid-eddsa-no-kid": raw(signed({"alg": "EdDSA"})),
        "eddsa-tampered-payload": raw(head + "." + b64url(json.dumps(dict(claims, sub="root"))) + "." + sig),
        "eddsa-bad-signature": raw(head + "." + body + "." + b64url(bytes([sig_bytes[0] ^ 1]) + sig_bytes[1:])),
        "eddsa-63-byte-signature": raw(head + "." + body + "." + b64url(sig_bytes[:63])),
        "eddsa-expired": raw(token(ed, "user|old", exp=NOW - 3600)),
        # alg and key type must agree both ways: an RSA key for EdDSA, the Ed25519 key for RS256.
        "eddsa-naming-the-rsa-key": raw(signed({"alg": "EdDSA", "kid": "fuzz-rsa"}, dict(claims, aud="herald-fuzz"))),
        "rs256-naming-the-ed25519-key": raw(signed({"alg": "RS256", "kid": "rfc8037"})),
        "eddsa-not-allowed-for-issuer": raw(signed({"alg": "EdDSA"}, dict(claims, iss="joe", aud="herald-test"))),
        "alg-ed448": raw(signed({"alg": "Ed448", "kid": "rfc8037"})),
        "rfc-rfc8037-a4": raw(rfc),
    }
    for name, data in seeds.items():
        write("fuzz_jwt", name, data)


# ---- fuzz_proto and fuzz_http: the demo app of tests/fuzz/app ---------------

def fixed_id(table, i):
    """The id fuzz_common.h gives document i of table number `table` (users 1, feeds 2, reels 3, videos 4)."""
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    n = int.from_bytes(table.to_bytes(4, "big") + bytes([i + 1]) * 16, "big")
    return "".join(alphabet[(n >> (5 * (31 - k))) & 31] for k in range(32))


ALICE, BOB = fixed_id(1, 0), fixed_id(1, 1)
FEED_ALICE, FEED_BOB = fixed_id(2, 0), fixed_id(2, 1)
REEL0, REEL1, REEL_BOB = fixed_id(3, 0), fixed_id(3, 1), fixed_id(3, 2)
VIDEO0 = fixed_id(4, 0)


def msg(type_, **fields):
    return json.dumps(dict(type=type_, **fields), separators=(",", ":"))


def proto_seeds():
    demo = demo_key()
    alice = token(demo, "demo|alice", email="alice@example.com", name="Alice")
    bob = token(demo, "demo|bob")
    expired = token(demo, "demo|alice", iat=NOW - 7200, exp=NOW - 3600)
    admin = msg("auth", id="a", token=ADMIN_KEY)
    new_video = {"op": "insert", "table": "videos", "value": {"twitchId": "42", "title": "New", "status": "Queued"}}
    list_feeds = msg("sub", id="feeds", path="feeds:listByUser", args={})
    seeds = {
        "ping": [msg("ping", id="p"), msg("ping")],
        "auth-admin-raw-query-sub-mutate": [
            admin, msg("query", id="q", query={"table": "users"}),
            msg("sub", id="s", query={"table": "videos", "index": "by_status", "range": [{"eq": ["status", "Queued"]}]}),
            msg("mutate", id="m", ops=[new_video]), msg("unsub", id="s")],
        "auth-bad-jwt": [msg("auth", id="a", token="not.a.jwt"), msg("sub", id="s", path="users:me")],
        "auth-expired-jwt": [msg("auth", id="a", token=expired)],
        "auth-null-empty-and-wrong-type": [admin, msg("auth", id="a", token=None), msg("auth", id="b", token=""),
                                           msg("auth", id="c", token=5), msg("auth", id="d")],
        "raw-without-admin": [msg("query", id="q", query={"table": "users"}), msg("mutate", id="m", ops=[new_video]),
                              msg("sub", id="s", query={"table": "users"})],
        "sub-unsub": [msg("sub", id="s", path="videos:list", args={}), msg("unsub", id="s"), msg("unsub", id="s"),
                      msg("unsub")],
        "sub-function-shared-update": [
            msg("auth", id="a", token=alice), "~" + msg("auth", id="a", token=alice), list_feeds, "~" + list_feeds,
            msg("mutate", id="m", path="feeds:create", args={"prompt": "birds", "tags": ["x"]}),
            "~" + msg("unsub", id="feeds")],
        "mutate-function-idempotency-key": [
            msg("auth", id="a", token=bob),
            msg("mutate", id="m1", path="users:upsert", args={"name": "Bob"}, idempotencyKey="upsert-1"),
            msg("mutate", id="m2", path="users:upsert", args={"name": "Bob"}, idempotencyKey="upsert-1"),
            msg("mutate", id="m3", path="users:upsert", args={}, idempotencyKey=""),
            msg("mutate", id="m4", path="users:upsert", args=[], idempotencyKey=7)],
        "mutate-raw-ops": [admin, msg("mutate", id="m", ops=[
            {"op": "patch", "id": VIDEO0, "value": {"status": "Done"}, "unset": ["jobId"]},
            {"op": "replace", "id": REEL_BOB, "value": {"feedId": FEED_BOB, "position": 5, "sourceType": "scraped",
                                                        "status": "ready", "createdAt": 1, "updatedAt": 2}},
            {"op": "delete", "id": REEL0}, new_video]),
            msg("mutate", id="bad", ops=[{"op": "delete", "id": "nope"}]), msg("mutate", id="none")],
        "reload": [msg("reload", id="r"), admin, msg("reload", id="r2")],
        "admin-ops-and-tail": [
            msg("admin", id="x", op="tables"), admin, msg("admin", id="t", op="tables"), msg("admin", id="s", op="schema"),
            msg("admin", id="f", op="functions"), msg("admin", id="st", op="stats"), msg("admin", id="u", op="nope"),
            msg("admin", op="stats"), msg("tail", id="tail"), "~" + msg("auth", id="a", token=ADMIN_KEY),
            "~" + msg("mutate", id="m", ops=[new_video]), msg("tail", id="tail2"), msg("unsub", id="tail2")],
        "slow-client-merged-updates": [
            admin, msg("sub", id="all", query={"table": "videos"}), msg("sub", id="reels", query={"table": "reels"}),
            "&" + msg("mutate", id="m1", ops=[new_video]),
            "&" + msg("mutate", id="m2", path="fuzz:setStatus", args={"twitchId": "1900000000", "status": "Done"}),
            "&" + msg("query", id="q", query={"table": "videos"}), msg("ping", id="p")],
        "close-with-requests-at-the-writer": [
            admin, "&" + msg("mutate", id="m", ops=[new_video]), "!close", msg("ping", id="p"),
            "~" + msg("auth", id="a", token=ADMIN_KEY), "~&" + msg("tail", id="t"), "~&" + msg("mutate", id="m2", ops=[new_video]),
            "~!close"],
        "internal-functions": [
            msg("query", id="q", path="fuzz:countByStatus"), msg("sub", id="s", path="fuzz:countByStatus"),
            msg("mutate", id="m", path="fuzz:setStatus", args={"twitchId": "1900000000", "status": "X"}),
            admin, msg("sub", id="s", path="fuzz:countByStatus"),
            msg("mutate", id="m", path="fuzz:setStatus", args={"twitchId": "1900000000", "status": "X"})],
        "function-errors-with-data": [
            msg("query", id="q", path="fuzz:fail", args={"code": "E", "detail": [1, {"a": None}]}),
            msg("sub", id="s", path="fuzz:fail"), msg("query", id="q2", path="fuzz.js:fail"),
            msg("mutate", id="m", path="videos:list"), msg("sub", id="s2", path="videos:create"),
            msg("query", id="q3", path="nope:nothing"), msg("query", id="q4", path=""), msg("query", id="q5", path=7)],
        "reels-paginate-as-owner": [
            msg("auth", id="a", token=alice),
            msg("sub", id="reels", path="reels:listForFeed", args={"feedId": FEED_ALICE, "paginationOpts": {"numItems": 1, "cursor": None}}),
            msg("query", id="reel", path="reels:getById", args={"reelId": REEL1}),
            msg("query", id="other", path="feeds:getById", args={"feedId": FEED_BOB}),
            msg("mutate", id="m", path="reels:addToFeed", args={"feedId": FEED_ALICE, "sourceType": "generated", "videoUrl": "https://v.invalid/2.mp4"}),
            msg("mutate", id="p", path="feeds:updateProgress", args={"feedId": FEED_ALICE, "lastSeenReelId": REEL1})],
        "reauth-switches-identity": [
            msg("auth", id="a", token=alice), msg("sub", id="me", path="users:me"), list_feeds,
            msg("sub", id="u", path="users:getById", args={"userId": ALICE}),
            msg("auth", id="b", token=bob), msg("auth", id="c", token=ADMIN_KEY), msg("sub", id="raw", query={"table": "users"}),
            msg("auth", id="d", token=None)],
        "too-many-subscriptions": [admin] + [msg("sub", id=f"s{i}", query={"table": "videos", "take": i}) for i in range(10)],
        "malformed-messages": ["", "{", "[]", "null", '{"type":5}', '{"id":"x"}', '{"type":"ping","id":5}',
                               '{"type":"nope","id":"x"}', '{"type":"sub"}', '{"type":"sub","id":"s","path":null}',
                               '{"type":"query","id":"q","args":{}}', '{"type":"ping","id":"\\u0000"}'],
    }
    for name, lines in seeds.items():
        write("fuzz_proto", name, "\n".join(lines) + "\n")
    # What found a bug (docs/fuzzing.md): a refused token left an expiry time on the connection.
    future = token(demo, "demo|alice", iat=FOREVER - 10)
    write("fuzz_proto", "found-refused-token-leaves-an-expiry-time",
          msg("auth", id="a", token=future) + "\n" + msg("ping", id="p") + "\n")

    # fuzz_http: endpoint byte, the Authorization header's value, a newline, the body.
    query, mutation, other, api = b"\x00", b"\x01", b"\x02", b"\x03"
    bearer = lambda t: ("Bearer " + t).encode()
    body = lambda **b: json.dumps(b).encode()
    http = {
        "query-function-anonymous": query + b"\n" + body(path="videos:list", args={}),
        "query-raw-admin": query + bearer(ADMIN_KEY) + b"\n" + body(query={"table": "videos", "order": "desc"}),
        "query-raw-in-args": query + bearer(ADMIN_KEY) + b"\n" + body(args={"table": "users"}),
        "query-raw-without-admin": query + b"\n" + body(query={"table": "users"}),
        "query-raw-bad-table": query + bearer(ADMIN_KEY) + b"\n" + body(query={"table": "nope"}),
        "query-function-error-data": query + b"\n" + body(path="fuzz:fail", args={"detail": [1, 2]}),
        "query-as-user": query + bearer(alice) + b"\n" + body(path="feeds:listByUser", args={}),
        "mutation-raw-admin-idempotent": mutation + bearer(ADMIN_KEY) + b"\n" + body(ops=[new_video], idempotencyKey="k"),
        "mutation-raw-ops-not-array": mutation + bearer(ADMIN_KEY) + b"\n" + body(ops="insert"),
        "mutation-function-as-user": mutation + bearer(alice) + b"\n" + body(path="users:upsert", args={"name": "A"}),
        "mutation-function-signed-in": mutation + bearer(bob) + b"\n" + body(path="videos:create", args={"twitchId": "7", "title": "T"}),
        "mutation-internal-admin": mutation + bearer(ADMIN_KEY) + b"\n" + body(path="fuzz:setStatus", args={"twitchId": "1900007919", "status": "S"}),
        "mutation-internal-anonymous": mutation + b"\n" + body(path="fuzz:setStatus", args={"twitchId": "1", "status": "S"}),
        "mutation-a-query": mutation + b"\n" + body(path="videos:list"),
        "path-not-a-string": mutation + b"\n" + body(path=5),
        "bearer-junk-jwt": query + bearer("junk.jwt.token") + b"\n" + body(path="users:me"),
        "bearer-expired-jwt": query + bearer(expired) + b"\n" + body(path="users:me"),
        "basic-auth": query + b"Basic YWxhZGRpbjpvcGVuc2VzYW1l\n" + body(path="videos:list"),
        "bad-json": mutation + b"\n{\"ops\": [",
        "not-an-object": query + b"\n[1,2]",
        "empty-body": query + b"\n",
        "unknown-endpoint": other + b"\n" + body(path="videos:list"),
        "api-root": api + bearer(ADMIN_KEY) + b"\n{}",
    }
    for name, data in http.items():
        write("fuzz_http", name, data)


# ---- fuzz_diff -------------------------------------------------------------------

def diff_seeds():
    docs = lambda *ids: [{"_id": i, "title": i.upper()} for i in ids]
    pairs = {
        "docs-example": ('[{"_id":"a","title":"Intro"},{"_id":"b","title":"Setup"},'
                         '{"_id":"c","title":"Deploy","progressPercentage":41},{"_id":"d","title":"Launch"}]',
                         '{"a":{"c":[["c",{"s":{"progressPercentage":42}}]],"i":[[3,{"_id":"e","title":"Retro"}]],'
                         '"m":[["d",0]],"r":["b"]}}'),
        "paginate-example": ('{"page":[{"_id":"a","n":1},{"_id":"b","n":2}],"isDone":false,"continueCursor":"x"}',
                             '{"o":{"p":{"c":[["b",{"s":{"n":3}}]],"i":[[1,{"_id":"c","n":4}]],"r":["a"]},"s":{"isDone":true}}}'),
        "document-patch": ('{"_id":"a","title":"Intro","draft":true}', '{"o":{"s":{"title":"Intro!"},"u":["draft"]}}'),
        "replace": ('[1,2,3]', '{"v":{"$integer":"AQAAAAAAAAA="}}'),
        "reverse-as-values": (json.dumps(docs("a", "b", "c", "d")), json.dumps(docs("d", "c", "b", "a"))),
        "lists-of-documents": (json.dumps(docs("a", "b", "c")), json.dumps(docs("c", "x", "a"))),
        "paginate-results": (json.dumps({"page": docs("a", "b"), "isDone": False, "continueCursor": "c1"}),
                             json.dumps({"page": docs("b", "c"), "isDone": True, "continueCursor": "c2"})),
        "same-id-document": ('{"_id":"a","n":{"$float":"AAAAAAAAAIA="},"x":[1]}', '{"_id":"a","n":0,"y":{"$bytes":"AAE="}}'),
        "repeated-ids": ('[{"_id":"a"},{"_id":"a"}]', '[{"_id":"a","n":1}]'),
        "invalid-move-out-of-range": (json.dumps(docs("a", "b")), '{"a":{"m":[["a",5]]}}'),
        "invalid-unknown-id": (json.dumps(docs("a")), '{"a":{"r":["zz"],"c":[["yy",{}]]}}'),
        "invalid-set-and-unset": ('{"_id":"a","x":1}', '{"o":{"s":{"x":2},"u":["x"]}}'),
        "invalid-unknown-key": ('{"_id":"a"}', '{"o":{"q":1}}'),
        "invalid-duplicate-position": (json.dumps(docs("a", "b")), '{"a":{"i":[[0,{"_id":"c"}],[0,{"_id":"d"}]]}}'),
        "invalid-int64-position": (json.dumps(docs("a", "b")), '{"a":{"m":[["b",{"$integer":"AAAAAAAAAAA="}]]}}'),
        "null-and-scalars": ('null', '{"v":"text"}'),
    }
    for name, (a, b) in pairs.items():
        write("fuzz_diff", name, a + "\n" + b)


if __name__ == "__main__":
    # Which seeds: any of jwt (new fuzz keys, so the JWKS changes too), eddsa (fuzz_jwt's EdDSA
    # seeds alone, no new keys), server, diff; default all but eddsa, which jwt includes.
    makers = {"jwt": jwt_seeds, "eddsa": eddsa_seeds, "server": proto_seeds, "diff": diff_seeds}
    for which in sys.argv[1:] or ["jwt", "server", "diff"]:
        makers[which]()
