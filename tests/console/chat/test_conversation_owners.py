"""Saved conversations belong to their user: each sees their own; seeing others' is the administrators'
`conversations:view_all`, and it is audited. Rows from before owners were kept are the administrators' to see."""

from __future__ import annotations

import pytest

from console.access.guard import PermissionDenied
from console.chat.conversation import Conversation
from tests.access_helpers import ROLE_PASSWORD, admin_core, raw_database


@pytest.fixture
def people(tmp_path):
    core, admin = admin_core(tmp_path / "data")
    principals = {"admin": admin}
    for name in ("tess", "toby"):
        core.access.create_user(admin, name, ROLE_PASSWORD, "tester")
        principals[name] = core.sign_in(name, ROLE_PASSWORD)
    yield core, principals
    core.shutdown()


def saved(core, principal, question: str) -> int:
    conversation = Conversation()
    conversation.add_user(question)
    conversation.add_assistant("an answer")
    return core.conversations.save(principal, conversation)


def test_each_user_lists_only_their_own_conversations(people):
    core, who = people
    saved(core, who["tess"], "tess asks")
    saved(core, who["toby"], "toby asks")
    assert [c.title for c in core.conversations.list(who["tess"])] == ["tess asks"]
    assert [c.title for c in core.conversations.list(who["toby"])] == ["toby asks"]


def test_a_user_cannot_open_another_users_conversation(people):
    core, who = people
    toby_id = saved(core, who["toby"], "private question")
    with pytest.raises(PermissionDenied, match="conversations:view_all"):
        core.conversations.open(who["tess"], toby_id)
    with pytest.raises(PermissionDenied, match="conversations:view_all"):
        core.conversations.list_all(who["tess"])


def test_an_admin_sees_everyones_conversations_and_it_is_audited(people):
    core, who = people
    toby_id = saved(core, who["toby"], "toby asks")
    assert [c.owner for c in core.conversations.list_all(who["admin"])] == ["toby"]
    assert core.conversations.open(who["admin"], toby_id).turns[0].content == "toby asks"
    opened = core.audit_entries(who["admin"], action="conversation.")
    assert [(e.action, e.actor) for e in opened] == [("conversation.open", "admin"), ("conversation.list_all", "admin")]
    assert '"owner": "toby"' in opened[0].details


def test_conversations_saved_before_owners_are_visible_to_admins_only(people, tmp_path):
    core, who = people
    database = raw_database(tmp_path / "data")
    with database.write() as db:
        db.execute("insert into conversations (title, created_at, updated_at) values ('old one', '2026-01-01', '2026-01-01')")
    database.close()
    assert core.conversations.list(who["tess"]) == []
    assert [(c.title, c.owner) for c in core.conversations.list_all(who["admin"])] == [("old one", None)]
    [old] = core.conversations.list_all(who["admin"])
    with pytest.raises(PermissionDenied):
        core.conversations.open(who["tess"], old.id)


def test_continuing_someone_elses_conversation_saves_a_copy_of_ones_own(people):
    core, who = people
    toby_id = saved(core, who["toby"], "toby asks")
    conversation = core.conversations.open(who["admin"], toby_id)
    conversation.add_user("the admin follows up")
    conversation.add_assistant("a reply")
    copy_id = core.conversations.save(who["admin"], conversation, toby_id)
    assert copy_id != toby_id and len(core.conversations.open(who["toby"], toby_id).turns) == 2
    assert [c.id for c in core.conversations.list(who["admin"])] == [copy_id]
