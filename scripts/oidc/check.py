#!/usr/bin/env python3
"""Readiness and sanity check of the OpenID provider that broker-up runs (stdlib only).

Usage: check.py --timeout SECS --ca CAFILE --issuer URL --client-id ID
                --client-secret SECRET --scope SCOPE --ttl SECONDS

Waits until discovery answers, then checks what the OIDC tests rely on:
client_credentials with HTTP Basic and with the secret in the body each give a
Bearer JWT signed RS256 with a key from the JWKS endpoint, with sub = the client
id, the requested scope and exp - iat = the configured lifetime; a wrong secret
gets HTTP 401 with error=invalid_client and an error_description. One line per
check; exit status 0 = all as expected.
"""
import argparse
import base64
import json
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def b64json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def main():
    p = argparse.ArgumentParser()
    for name in ("--ca", "--issuer", "--client-id", "--client-secret", "--scope"):
        p.add_argument(name, required=True)
    p.add_argument("--ttl", type=int, required=True)
    p.add_argument("--timeout", type=float, default=30.0)
    a = p.parse_args()
    ctx = ssl.create_default_context(cafile=a.ca)

    def call(url, form=None, basic=None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(url, data=data)
        if basic:
            token = base64.b64encode(("%s:%s" % basic).encode()).decode()
            req.add_header("Authorization", "Basic " + token)
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    deadline = time.monotonic() + a.timeout
    while True:
        try:
            _, disco = call(a.issuer + "/.well-known/openid-configuration")
            break
        except (OSError, ValueError) as e:
            if time.monotonic() >= deadline:
                print("NOT READY %s after %.0fs: %r" % (a.issuer, a.timeout, e), file=sys.stderr)
                return 1
            time.sleep(0.1)
    token_url = disco["token_endpoint"]
    if disco.get("issuer") != a.issuer or "client_credentials" not in disco.get("grant_types_supported", []):
        print("WRONG discovery document: %r" % disco, file=sys.stderr)
        return 1
    _, jwks = call(disco["jwks_uri"])
    kids = {k.get("kid") for k in jwks.get("keys", [])}
    print("ready %s: token endpoint %s, %d signing key(s)" % (a.issuer, token_url, len(kids)))

    grant = {"grant_type": "client_credentials", "scope": a.scope}
    for how, form, basic in (
        ("HTTP Basic", grant, (a.client_id, a.client_secret)),
        ("secret in body", dict(grant, client_id=a.client_id, client_secret=a.client_secret), None),
    ):
        status, body = call(token_url, form, basic)
        token = body.get("access_token", "")
        if status != 200 or token.count(".") != 2:
            print("FAILED client_credentials (%s): HTTP %d %r" % (how, status, body), file=sys.stderr)
            return 1
        header, claims = b64json(token.split(".")[0]), b64json(token.split(".")[1])
        problems = []
        if header.get("alg") != "RS256" or header.get("kid") not in kids:
            problems.append("header %r (JWKS kids %r)" % (header, kids))
        if claims.get("sub") != a.client_id or claims.get("scope") != a.scope:
            problems.append("claims %r" % claims)
        if claims.get("exp", 0) - claims.get("iat", 0) != a.ttl or body.get("expires_in") != a.ttl:
            problems.append("lifetime: exp-iat=%s expires_in=%s, want %d"
                            % (claims.get("exp", 0) - claims.get("iat", 0), body.get("expires_in"), a.ttl))
        if problems:
            print("WRONG token (%s): %s" % (how, "; ".join(problems)), file=sys.stderr)
            return 1
        print("token (%s): RS256 JWT, sub=%s scope=%s aud=%s lifetime %ds"
              % (how, claims["sub"], claims["scope"], claims.get("aud"), a.ttl))

    status, body = call(token_url, grant, (a.client_id, a.client_secret + "-wrong"))
    if status != 401 or body.get("error") != "invalid_client" or not body.get("error_description"):
        print("WRONG answer to a wrong secret: HTTP %d %r" % (status, body), file=sys.stderr)
        return 1
    print("refused-as-expected wrong secret: HTTP 401 %s (%s)" % (body["error"], body["error_description"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
