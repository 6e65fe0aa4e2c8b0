#!/usr/bin/python3
"""A CIS2 relying party written with Python Authlib (Debian's python3-authlib), for OpenCIS's test suite.

It is configured as NHS England's manage-breast-screening configures its CIS2 client (NHSDigital/
dtos-manage-breast-screening, manage_breast_screening/auth/oauth.py and views.py, services.py,
config/settings/base.py; read at commit b45807f of that repository):

- Authlib's OAuth client registered with the provider's discovery URL, ``client_kwargs`` scope
  "openid profile email nhsperson associatedorgs", ``prompt: login`` and ``token_endpoint_auth_method:
  private_key_jwt``; no ``code_challenge_method``, so no PKCE;
- client authentication: a private_key_jwt assertion signed RS512, header ``kid`` = the JWK thumbprint of the key,
  expiring after 300 s (its ``CustomPrivateKeyJWT``); its public key published at ``/auth/cis2/jwks_uri`` with
  ``alg: RS512``;
- ``acr_values`` from its settings (AAL2_OR_AAL3_ANY here); at the callback, the ID token checked by Authlib,
  userinfo fetched, ``sub`` of both compared, ``id_assurance_level`` >= 3 and ``authentication_assurance_level`` >= 2
  (for AAL2_OR_AAL3_ANY) required;
- back-channel logout: the logout token decoded with the provider's keys and the rules of its
  ``decode_logout_token`` (iss, aud, exp, iat essential; the back-channel logout event; no nonce; 60 s leeway); every
  session of that ``sub`` ended.

Role selection and changing role follow NHS England's manage-vaccinations-in-schools (nhsuk/
manage-vaccinations-in-schools, config/initializers/devise.rb): scopes "openid profile email nationalrbacaccess
associatedorgs" plus ``selectedrole``, or ``changedrole`` with prompt=login to change role. Refresh tokens and
RP-initiated logout are not used by either application; here they use Authlib's refresh and the provider's
end_session_endpoint with the same client authentication.

The code is this test's own; it uses the same Authlib classes the Django integration (authlib.integrations.
django_client) is made of — OAuth2Mixin, OpenIDMixin, BaseApp over requests' OAuth2Session — with a plain WSGI
server instead of Django. Configuration by environment: ISSUER, CLIENT_ID, PRIVATE_KEY_FILE, BASE_URL, PORT,
ACR_VALUES. AUTHLIB_INSECURE_TRANSPORT=1 lets Authlib talk plain http to the test server on localhost.
"""

import json
import os
import secrets
import sys
import threading
import time
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlencode
from wsgiref.simple_server import WSGIRequestHandler, make_server

from authlib.integrations.base_client import (
    BaseApp,
    BaseOAuth,
    FrameworkIntegration,
    OAuth2Mixin,
    OAuthError,
    OpenIDMixin,
)
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, JsonWebToken, JoseError
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign

ISSUER = os.environ["ISSUER"]
CLIENT_ID = os.environ["CLIENT_ID"]
BASE_URL = os.environ["BASE_URL"].rstrip("/")
PORT = int(os.environ["PORT"])
ACR_VALUES = os.environ.get("ACR_VALUES", "AAL2_OR_AAL3_ANY")
with open(os.environ["PRIVATE_KEY_FILE"], encoding="utf-8") as f:
    PRIVATE_KEY = f.read()

# manage-breast-screening's CIS2_SCOPES; manage-vaccinations-in-schools' for role selection.
SCOPES = "openid profile email nhsperson associatedorgs"
ROLE_SCOPES = "openid profile email nationalrbacaccess associatedorgs"
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
REQUIRED_ID_ASSURANCE_LEVEL = 3


class Integration(FrameworkIntegration):
    """State kept in the relying party's own session (as Django's session would keep it)."""

    def update_token(self, token, refresh_token=None, access_token=None):
        pass

    @staticmethod
    def load_config(oauth, name, params):
        return {}


class App(OAuth2Mixin, OpenIDMixin, BaseApp):
    """What authlib.integrations.django_client.DjangoOAuth2App is, with a dict for the session."""

    client_cls = OAuth2Session

    def authorize_redirect(self, session, redirect_uri, **kwargs):
        rv = self.create_authorization_url(redirect_uri, **kwargs)
        state = rv.pop("state")
        self.framework.set_state_data(session, state, {"redirect_uri": redirect_uri, **rv})
        return rv["url"]

    def authorize_access_token(self, session, query):
        if query.get("error"):
            raise OAuthError(error=query["error"], description=query.get("error_description"))
        params = {"code": query.get("code"), "state": query.get("state")}
        state_data = self.framework.get_state_data(session, params["state"])
        self.framework.clear_state_data(session, params["state"])
        params = self._format_state_params(state_data, params)
        state_data.pop("url", None)
        token = self.fetch_access_token(**params)
        if "id_token" in token and "nonce" in state_data:
            token["userinfo"] = self.parse_id_token(token, nonce=state_data["nonce"])
        return token


class OAuth(BaseOAuth):
    oauth2_client_cls = App
    framework_integration_cls = Integration


class CustomPrivateKeyJWT(PrivateKeyJWT):
    """manage-breast-screening's: RS512, its kid header, a 300-second expiry."""

    def __init__(self, *, headers=None, alg="RS512", expires_in=300):
        super().__init__(headers=headers, alg=alg)
        self.expires_in = expires_in

    def sign(self, auth, token_endpoint):
        return private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            header=self.headers,
            alg=self.alg,
            expires_in=self.expires_in,
        )


def public_jwk():
    private_jwk = JsonWebKey.import_key(PRIVATE_KEY, {"kty": "RSA"})
    return JsonWebKey.import_key(private_jwk.get_public_key(), {"kty": "RSA"})


JWK = public_jwk()
KID = JWK.thumbprint()

oauth = OAuth()
oauth.register(
    "cis2",
    client_id=CLIENT_ID,
    client_secret=PRIVATE_KEY,
    server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
    client_kwargs={"scope": SCOPES, "prompt": "login", "token_endpoint_auth_method": "private_key_jwt"},
    client_auth_methods=[CustomPrivateKeyJWT(headers={"kid": KID})],
)
cis2 = oauth.create_client("cis2")


def key_loader(header, _payload):
    """The provider's signing keys (its jwks_uri), looked up by kid, fetched again once if the kid is new."""
    keys = JsonWebKey.import_key_set(cis2.fetch_jwk_set())
    try:
        return keys.find_by_kid(header.get("kid"))
    except ValueError:
        return JsonWebKey.import_key_set(cis2.fetch_jwk_set(force=True)).find_by_kid(header.get("kid"))


def decode_logout_token(issuer, logout_token):
    """manage-breast-screening's decode_logout_token rules."""
    rules = {
        "iss": {"values": [issuer], "essential": True},
        "aud": {"values": [CLIENT_ID], "essential": True},
        "exp": {"essential": True},
        "iat": {"essential": True},
        "events": {
            "essential": True,
            "validate": lambda claim, value: isinstance(value, dict) and BACKCHANNEL_LOGOUT_EVENT in value,
        },
        "nonce": {"validate": lambda claim, value: value is None},
    }
    algs = cis2.load_server_metadata().get("id_token_signing_alg_values_supported") or ["RS256"]
    claims = JsonWebToken(algs).decode(logout_token, key=key_loader, claims_options=rules)
    claims.validate(leeway=60)
    return claims


# The relying party's own state: its sessions (cookie -> data) and what happened, for the test to read.
lock = threading.Lock()
sessions = {}
events = []


def record(kind, **data):
    with lock:
        events.append({"kind": kind, "at": time.time(), **data})


class Request:
    def __init__(self, environ):
        self.environ = environ
        self.method = environ["REQUEST_METHOD"]
        self.path = environ.get("PATH_INFO", "/")
        self.query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        body = b""
        if self.method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
        self.form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        self.sid = cookie["rp_session"].value if "rp_session" in cookie else None

    def session(self):
        with lock:
            if self.sid not in sessions:
                self.sid = secrets.token_urlsafe(16)
                sessions[self.sid] = {}
            return sessions[self.sid]


def respond(start, status, body, content_type="application/json", headers=()):
    data = body if isinstance(body, bytes) else (json.dumps(body) if content_type == "application/json" else body).encode()
    start(status, [("Content-Type", content_type), ("Content-Length", str(len(data))), *headers])
    return [data]


def redirect(start, location, sid=None):
    headers = [("Location", location)]
    if sid:
        headers.append(("Set-Cookie", f"rp_session={sid}; Path=/; HttpOnly; SameSite=Lax"))
    start("302 Found", headers + [("Content-Length", "0")])
    return [b""]


def log_in(req, start, scope=SCOPES, extra=None):
    session = req.session()
    url = cis2.authorize_redirect(session, f"{BASE_URL}/auth/cis2/callback", acr_values=ACR_VALUES, scope=scope, **(extra or {}))
    record("authorize", url=url)
    return redirect(start, url, req.sid)


def callback(req, start):
    session = req.session()
    try:
        token = cis2.authorize_access_token(session, req.query)
    except OAuthError as e:
        record("callback_error", error=e.error, description=e.description)
        return respond(start, "400 Bad Request", {"error": e.error, "description": e.description})
    except JoseError as e:
        record("callback_error", error="id_token_invalid", description=str(e))
        return respond(start, "400 Bad Request", {"error": "id_token_invalid", "description": str(e)})
    id_token_userinfo = token["userinfo"]
    userinfo = cis2.userinfo(token=token)
    sub = userinfo.get("sub")
    if not sub or sub != id_token_userinfo.get("sub"):
        return respond(start, "400 Bad Request", {"error": "Subject mismatch in CIS2 response"})
    ial = id_token_userinfo.get("id_assurance_level")
    if ial is None or int(ial) < REQUIRED_ID_ASSURANCE_LEVEL:
        return respond(start, "403 Forbidden", {"error": "Insufficient identity assurance level"})
    aal = id_token_userinfo.get("authentication_assurance_level")
    minimum = 2 if ACR_VALUES == "AAL2_OR_AAL3_ANY" else 3
    if aal is None or int(aal) < minimum:
        return respond(start, "403 Forbidden", {"error": "Insufficient authentication assurance level"})
    with lock:
        session.update({"sub": sub, "token": dict(token), "id_token_claims": dict(id_token_userinfo), "userinfo": dict(userinfo)})
    record("signed_in", sub=sub)
    return respond(
        start,
        "200 OK",
        "<!DOCTYPE html><html lang=\"en\"><title>Breast screening</title><main><h1>Signed in</h1></main></html>",
        "text/html; charset=utf-8",
        [("Set-Cookie", f"rp_session={req.sid}; Path=/; HttpOnly; SameSite=Lax")],
    )


def refresh(req, start):
    session = req.session()
    token = session.get("token")
    if not token or not token.get("refresh_token"):
        return respond(start, "400 Bad Request", {"error": "no refresh token"})
    metadata = cis2.load_server_metadata()
    with cis2._get_oauth_client(**metadata) as client:
        try:
            new = client.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
        except OAuthError as e:
            return respond(start, "400 Bad Request", {"error": e.error, "description": e.description})
    with lock:
        session["token"] = dict(new)
    return respond(start, "200 OK", {"refresh_token": new.get("refresh_token"), "access_token": new.get("access_token"), "previous": token["refresh_token"]})


def log_out(req, start):
    # The local session is left for the provider's back-channel logout to end (as it ends every session of the person).
    token = req.session().get("token") or {}
    end_session = cis2.load_server_metadata()["end_session_endpoint"]
    query = urlencode({"id_token_hint": token.get("id_token", ""), "post_logout_redirect_uri": f"{BASE_URL}/signed-out", "state": "rp-logout"})
    return redirect(start, f"{end_session}?{query}")


def back_channel_logout(req, start):
    logout_token = req.form.get("logout_token")
    if not logout_token:
        return respond(start, "400 Bad Request", {"error": "Missing logout_token"})
    try:
        claims = decode_logout_token(cis2.load_server_metadata()["issuer"], logout_token)
    except (JoseError, ValueError) as e:
        record("logout_token_refused", reason=str(e))
        return respond(start, "400 Bad Request", {"error": "Invalid logout token"})
    if "sub" not in claims:
        return respond(start, "400 Bad Request", {"error": "Invalid logout token: Missing 'sub' claim"})
    ended = 0
    with lock:
        for sid, data in list(sessions.items()):
            if data.get("sub") == claims["sub"]:
                del sessions[sid]
                ended += 1
    record("back_channel_logout", sub=claims["sub"], sid=claims.get("sid"), ended=ended)
    return respond(start, "200 OK", {"status": "ok"})


def jwks(req, start):
    jwk = JWK.as_dict()
    jwk.update({"kid": KID, "use": "sig", "alg": "RS512"})
    return respond(start, "200 OK", {"keys": [jwk]})


def state(req, start):
    with lock:
        me = sessions.get(req.sid) if req.sid else None
        return respond(start, "200 OK", {"session": me, "sessions": len(sessions), "events": events})


def application(environ, start):
    req = Request(environ)
    routes = {
        ("GET", "/auth/cis2/log-in"): log_in,
        ("GET", "/auth/cis2/select-role"): lambda r, s: log_in(r, s, f"{ROLE_SCOPES} selectedrole"),
        ("GET", "/auth/cis2/change-role"): lambda r, s: log_in(r, s, f"{ROLE_SCOPES} changedrole"),
        ("GET", "/auth/cis2/callback"): callback,
        ("GET", "/auth/cis2/jwks_uri"): jwks,
        ("POST", "/auth/cis2/back-channel-logout"): back_channel_logout,
        ("GET", "/refresh"): refresh,
        ("GET", "/log-out"): log_out,
        ("GET", "/signed-out"): lambda r, s: respond(s, "200 OK", "<!DOCTYPE html><html lang=\"en\"><title>Signed out</title><main><h1>Signed out</h1></main></html>", "text/html; charset=utf-8"),
        ("GET", "/state"): state,
    }
    handler = routes.get((req.method, req.path))
    if not handler:
        return respond(start, "404 Not Found", {"error": "not found"})
    try:
        return handler(req, start)
    except Exception as e:  # the test shows what went wrong rather than a bare 500
        record("exception", where=req.path, error=repr(e))
        return respond(start, "500 Internal Server Error", {"error": repr(e)})


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


if __name__ == "__main__":
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIServer

    class ThreadingServer(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    httpd = make_server("127.0.0.1", PORT, application, server_class=ThreadingServer, handler_class=Quiet)
    print("ready", flush=True)
    sys.stdout.flush()
    httpd.serve_forever()
