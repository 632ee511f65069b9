"""Access and refresh tokens: what verifies, and everything that must not."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import warnings

import jwt
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.auth import Principal, Role, TokenService
from api.auth.models import UserRecord
from api.errors import AuthenticationError, InvalidCredentialsError, TokenExpiredError

KEY = "unit-test-signing-key-0123456789abcdefghij"


def _service(
    key: str = KEY, *, clock_offset_s: float = 0.0, issuer: str = "permitpulse"
) -> TokenService:
    return TokenService(
        key=key,
        issuer=issuer,
        access_ttl=dt.timedelta(minutes=15),
        refresh_ttl=dt.timedelta(hours=12),
        clock=lambda: time.time() + clock_offset_s,
    )


ALICE = Principal(
    "alice", frozenset({Role.SUPERVISOR, Role.WATCHER}), frozenset({"s1", "s2"}), "w-7"
)
USER = UserRecord(
    username="alice",
    display_name="Alice",
    password_hash="$argon2id$x",
    roles=frozenset({Role.SUPERVISOR}),
    sites=frozenset({"s1"}),
    all_sites=False,
    worker_id=None,
    disabled=False,
    token_version=3,
    created_at=dt.datetime.now(dt.UTC),
)


def test_access_token_round_trips_roles_sites_and_worker() -> None:
    """What is signed is what is read back."""
    tokens = _service()
    p = tokens.principal(tokens.access_token(ALICE).token)
    assert p.username == "alice"
    assert p.roles == ALICE.roles
    assert p.sites == frozenset({"s1", "s2"})
    assert p.worker_id == "w-7"
    assert p.expires_at is not None
    assert p.expires_at > dt.datetime.now(dt.UTC)


def test_access_token_for_every_site_reads_back_as_none() -> None:
    """All-sites users are not confused with users of no site."""
    tokens = _service()
    everywhere = Principal("root", frozenset({Role.ADMIN}), None)
    nowhere = Principal("new", frozenset({Role.WORKER}), frozenset())
    assert tokens.principal(tokens.access_token(everywhere).token).sites is None
    assert tokens.principal(tokens.access_token(nowhere).token).sites == frozenset()


def test_expired_access_token_raises_token_expired() -> None:
    """Past exp (and the 10 s leeway), the token is refused as expired."""
    old = _service(clock_offset_s=-16 * 60 - 11).access_token(ALICE).token
    with pytest.raises(TokenExpiredError):
        _service().principal(old)


def test_token_from_the_future_is_refused() -> None:
    """nbf/iat in the future (a clock far off, or forgery) is not valid yet."""
    early = _service(clock_offset_s=3600).access_token(ALICE).token
    with pytest.raises(AuthenticationError, match="invalid token"):
        _service().principal(early)


@pytest.mark.parametrize(
    "other",
    [
        _service("another-signing-key-0123456789abcdefghij"),
        _service(issuer="someone-else"),
    ],
    ids=["other key", "other issuer"],
)
def test_token_of_another_key_or_issuer_is_refused(other: TokenService) -> None:
    """Only our own key and issuer verify."""
    with pytest.raises(AuthenticationError, match="invalid token"):
        _service().principal(other.access_token(ALICE).token)


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _unsigned(claims: dict[str, object], alg: str = "none") -> str:
    return f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(claims)}."


def _sign(claims: dict[str, object], key: str = KEY) -> str:
    """HS256 by hand, so that claims PyJWT would refuse to encode can be signed."""
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
    sig = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


def test_alg_none_and_other_algorithms_are_refused() -> None:
    """No algorithm confusion: 'none' and HS512 with our key are both refused."""
    tokens = _service()
    claims = jwt.decode(tokens.access_token(ALICE).token, options={"verify_signature": False})
    with pytest.raises(AuthenticationError):
        tokens.principal(_unsigned(claims))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # our key is short for HS512; that is the point
        hs512 = jwt.encode(claims, KEY, algorithm="HS512")
    with pytest.raises(AuthenticationError):
        tokens.principal(hs512)


def test_tampered_claims_break_the_signature() -> None:
    """Raising one's own roles in the payload invalidates the token."""
    token = _service().access_token(ALICE).token
    head, payload, sig = token.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["admin"]
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    with pytest.raises(AuthenticationError, match="invalid token"):
        _service().principal(f"{head}.{forged}.{sig}")


def test_refresh_and_access_tokens_are_not_interchangeable() -> None:
    """typ separates them: each endpoint takes only its own kind."""
    tokens = _service()
    refresh = tokens.refresh_token(USER).token
    with pytest.raises(AuthenticationError, match="wrong token type"):
        tokens.principal(refresh)
    with pytest.raises(InvalidCredentialsError):
        tokens.refresh_claims(tokens.access_token(ALICE).token)
    claims = tokens.refresh_claims(refresh)
    assert (claims.username, claims.token_version) == ("alice", 3)


def test_signed_token_with_unknown_role_is_malformed() -> None:
    """A validly signed token whose roles are not ours is still refused."""
    tokens = _service()
    claims = jwt.decode(tokens.access_token(ALICE).token, options={"verify_signature": False})
    claims["roles"] = ["superuser"]
    with pytest.raises(AuthenticationError, match="malformed"):
        tokens.principal(_sign(claims))


@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
@settings(max_examples=300)
def test_any_string_as_token_fails_only_with_authentication_error(token: str) -> None:
    """Garbage never crashes verification with anything but AuthenticationError."""
    with pytest.raises(AuthenticationError):
        _service().principal(token)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "sub",
                "typ",
                "roles",
                "sites",
                "all_sites",
                "wid",
                "exp",
                "iat",
                "nbf",
                "iss",
                "aud",
                "jti",
                "tv",
            ]
        ),
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=20)
        | st.lists(st.text(max_size=8), max_size=3),
    )
)
@settings(max_examples=300)
def test_any_signed_claims_verify_or_fail_with_authentication_error(
    claims: dict[str, object],
) -> None:
    """Correctly signed but arbitrary claims: a principal or AuthenticationError, nothing else."""
    token = _sign(claims)
    tokens = _service()
    try:
        p = tokens.principal(token)
    except AuthenticationError:
        return
    assert isinstance(p.username, str)
    assert all(isinstance(r, Role) for r in p.roles)


@given(
    exp_ahead=st.integers(1, 2**70),
    roles=st.lists(st.sampled_from([*Role, "root"]), max_size=3) | st.text(max_size=5),
    sites=st.lists(st.text(max_size=5) | st.integers(), max_size=3) | st.none(),
    all_sites=st.booleans() | st.none() | st.integers(0, 1),
    wid=st.none() | st.text(max_size=5) | st.integers(),
)
@settings(max_examples=300)
def test_well_formed_tokens_with_odd_values_verify_or_fail_cleanly(
    exp_ahead: int, roles: object, sites: object, all_sites: object, wid: object
) -> None:
    """Valid envelope, fuzzed content (huge exp, odd types): principal or AuthenticationError."""
    now = int(time.time())
    claims = {
        "typ": "access",
        "sub": "x",
        "iss": "permitpulse",
        "aud": "permitpulse-api",
        "iat": now,
        "nbf": now,
        "exp": now + exp_ahead,
        "jti": "j",
        "roles": roles,
        "sites": sites,
        "all_sites": all_sites,
        "wid": wid,
    }
    try:
        p = _service().principal(_sign(claims))
    except AuthenticationError:
        return
    assert all(isinstance(r, Role) for r in p.roles)
    assert p.sites is None or all(isinstance(s, str) for s in p.sites)
