"""Principals, tokens, roles: the single-user default, enforcement, and every denial."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select, text
from tests.cliutil import run_cli as _cli

from finegate.errors import ConfigError, FinegateError, PermissionDeniedError
from finegate.gate import record_gate_decision
from finegate.governance import (
    LOCAL_ADMIN,
    ROLES,
    Action,
    Principal,
    authenticate,
    create_principal,
    create_token,
    current_principal,
    list_events,
    list_principals,
    require,
    resolve_actor,
    revoke_principal,
    save_profile,
    verify_chain,
)
from finegate.registry import link_evidence, promote, register_model, rollback, set_guardrails
from finegate.store import Store
from finegate.store.schema import ApiToken


def test_single_user_default_is_local_admin(sqlite_store: Store) -> None:
    assert current_principal(sqlite_store) == LOCAL_ADMIN
    assert list_principals(sqlite_store) == []


def test_first_principal_must_be_admin(sqlite_store: Store) -> None:
    with pytest.raises(ConfigError, match="first principal must be an admin"):
        create_principal(sqlite_store, "bob", "viewer")
    assert list_principals(sqlite_store) == []


def test_token_is_shown_once_and_stored_hashed(store: Store) -> None:
    admin, token = create_principal(store, "alice", "admin")
    assert token.startswith("fgt_") and admin.role == "admin"
    secret = token.split("_", 2)[2]
    with store.engine.connect() as conn:
        dump = " ".join(
            str(v) for row in conn.execute(text("SELECT * FROM api_tokens")) for v in row
        )
        dump += " ".join(
            str(v) for row in conn.execute(text("SELECT * FROM audit_events")) for v in row
        )
    assert secret not in dump and token not in dump
    with store.session() as s:
        tok = s.scalar(select(ApiToken))
        assert tok is not None and len(tok.salt) == 32 and len(tok.secret_hash) == 64
    assert authenticate(store, token).name == "alice"


def test_enforcement_turns_on_with_the_first_principal(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = create_principal(store, "alice", "admin")
    with pytest.raises(PermissionDeniedError, match="authentication required"):
        current_principal(store)
    with pytest.raises(PermissionDeniedError, match="no longer applies"):
        resolve_actor(store, LOCAL_ADMIN)
    monkeypatch.setenv("FINEGATE_TOKEN", token)
    assert current_principal(store).name == "alice"
    monkeypatch.delenv("FINEGATE_TOKEN")
    save_profile(token)
    assert current_principal(store).name == "alice"


@pytest.mark.parametrize("bad", ["", "nonsense", "fgt_0123456789abcdef_" + "x" * 43])
def test_bad_tokens_are_refused(sqlite_store: Store, bad: str) -> None:
    create_principal(sqlite_store, "alice", "admin")
    with pytest.raises(PermissionDeniedError, match="invalid or revoked"):
        authenticate(sqlite_store, bad)


def test_wrong_secret_and_revocation(sqlite_store: Store) -> None:
    admin, admin_token = create_principal(sqlite_store, "alice", "admin")
    _, token = create_principal(sqlite_store, "bob", "viewer", actor=admin)
    tampered = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    with pytest.raises(PermissionDeniedError):
        authenticate(sqlite_store, tampered)
    second = create_token(sqlite_store, "bob", actor=admin)
    assert authenticate(sqlite_store, second).name == "bob"
    revoke_principal(sqlite_store, "bob", actor=admin)
    for t in (token, second):
        with pytest.raises(PermissionDeniedError):
            authenticate(sqlite_store, t)
    # Revoking everyone does not bring the single-user default back.
    revoke_principal(sqlite_store, "alice", actor=admin)
    with pytest.raises(PermissionDeniedError):
        current_principal(sqlite_store)
    actions = [e.action for e in list_events(sqlite_store)]
    assert actions == [
        "auth.create_principal",
        "auth.create_principal",
        "auth.create_token",
        "auth.revoke_principal",
        "auth.revoke_principal",
    ]
    assert verify_chain(sqlite_store).ok
    del admin_token


def test_role_table() -> None:
    assert ROLES["admin"] == frozenset(Action)
    for role, actions in ROLES.items():
        for action in Action:
            p = Principal(id=role, name=role, role=role)
            if action in actions:
                require(p, action)
            else:
                with pytest.raises(PermissionDeniedError, match=action.value):
                    require(p, action)
    assert not any(Action.OVERRIDE_GATE in a for r, a in ROLES.items() if r != "admin")


# Every mutating library call, with the action it needs. Allowed calls may still fail for
# other reasons (a missing version) but never with a permission error.
OPS: dict[str, tuple[tuple[Action, ...], Callable[[Store, Principal], object]]] = {
    "register": (
        (Action.REGISTER,),
        lambda s, a: register_model(s, f"m-{a.role}", "mock:refuse", actor=a),
    ),
    "promote": ((Action.PROMOTE,), lambda s, a: promote(s, "fixed@1", "retired", actor=a)),
    "override": (
        (Action.PROMOTE, Action.OVERRIDE_GATE),
        lambda s, a: promote(s, "fixed@1", "approved", override=True, reason="test", actor=a),
    ),
    "rollback": ((Action.ROLLBACK,), lambda s, a: rollback(s, "fixed", actor=a)),
    "link": ((Action.REGISTER,), lambda s, a: link_evidence(s, "fixed@1", actor=a)),
    "guardrails": (
        (Action.CONFIGURE_GUARDRAILS,),
        lambda s, a: set_guardrails(s, "fixed@1", {"input": ["injection"]}, actor=a),
    ),
    "gate": (
        (Action.RECORD_GATE,),
        lambda s, a: record_gate_decision(
            s,
            run_id="r1",
            policy_hash="p" * 64,
            policy_name="default",
            passed=True,
            rules=[],
            actor=a,
        ),
    ),
    "create-principal": (
        (Action.MANAGE_KEYS,),
        lambda s, a: create_principal(s, f"new-{a.role}", "viewer", actor=a),
    ),
    "revoke": ((Action.MANAGE_KEYS,), lambda s, a: revoke_principal(s, "target", actor=a)),
}


@pytest.fixture(scope="module")
def role_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict[str, Principal]]:
    tmp = tmp_path_factory.mktemp("roles")
    store = Store(f"sqlite:///{tmp / 'fg.db'}", home=tmp / "home")
    admin, _ = create_principal(store, "root", "admin", actor=LOCAL_ADMIN)
    people = {role: create_principal(store, f"p-{role}", role, actor=admin)[0] for role in ROLES}
    register_model(store, "fixed", "mock:refuse", actor=admin)
    store.start_run("eval", run_id="r1", model_hash="h1")
    yield store, people
    store.close()


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_mutating_call_checks_permission(
    role_store: tuple[Store, dict[str, Principal]], role: str, op: str
) -> None:
    store, people = role_store
    needs, call = OPS[op]
    actor = people[role]
    before = len(list_events(store, action="access.denied", actor=actor.name))
    missing = [a for a in needs if a not in ROLES[role]]
    if not missing:
        try:
            call(store, actor)
        except PermissionDeniedError as exc:
            # An allowed override may still be refused by the gate, never by the role.
            pytest.fail(f"{role} was denied {op}: {exc}")
        except FinegateError:
            pass
    else:
        with pytest.raises(PermissionDeniedError, match=missing[0].value):
            call(store, actor)
        denied = list_events(store, action="access.denied", actor=actor.name)
        assert len(denied) == before + 1
        assert denied[-1].details["action"] == missing[0].value


def test_cli_acts_as_the_token_principal(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from finegate.store.db import reset_default_store

    monkeypatch.setenv("FINEGATE_DB", sqlite_store.url)
    reset_default_store()
    assert "local role=admin" in _cli(["auth", "whoami"], capsys)[1]
    code, out, _ = _cli(["auth", "create-principal", "alice", "--role", "admin"], capsys)
    assert code == 0
    admin_token = out.strip()
    assert admin_token.startswith("fgt_")
    # Enforcement is on: no token, no access (exit code 3).
    code, _, err = _cli(["registry", "list"], capsys)
    assert code == 3 and "authentication required" in err
    monkeypatch.setenv("FINEGATE_TOKEN", admin_token)
    code, out, _ = _cli(["auth", "create-principal", "vic", "--role", "viewer"], capsys)
    viewer_token = out.strip()
    code, out, _ = _cli(["auth", "list"], capsys)
    assert code == 0 and "vic" in out and viewer_token not in out
    monkeypatch.setenv("FINEGATE_TOKEN", viewer_token)
    assert _cli(["registry", "list"], capsys)[0] == 0
    code, _, err = _cli(["registry", "register", "bot", "--model", "mock:refuse"], capsys)
    assert code == 3 and "vic (role viewer) may not registry:register" in err
    monkeypatch.setenv("FINEGATE_TOKEN", viewer_token[:-2] + "zz")
    code, _, err = _cli(["registry", "list"], capsys)
    assert code == 3 and "invalid or revoked" in err
    reset_default_store()
