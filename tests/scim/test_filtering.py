"""scim.filtering: SCIM filters (RFC 7644 §3.4.2.2) as Django Q objects over humans and SCIM groups,
evaluated on PostgreSQL and, for the same data, on SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper
from django.db.models import Model, Q

from governance.models import Human, HumanStatus
from scim.filtering import (
    ENTERPRISE_USER,
    USER_FILTER,
    ScimFilterError,
    filter_q,
    groups_q,
    parse,
    split_name,
    users_q,
)
from scim.models import ScimGroup, ScimUser
from tests.factories import SYSTEM, make_human

pytestmark = pytest.mark.django_db


@pytest.fixture
def people() -> dict[str, Human]:
    from governance import services

    bob = make_human(email="bob.stone@example.com", name="Bob Stone", department="Risk", title="Director")
    ann = make_human(
        email="Ann.Lee@Example.com",
        name="Ann Lee",
        department="Payments",
        title="Engineer",
        manager=bob,
        external_id="OKTA-ann",
    )
    cy = make_human(email="cy@corp.example.org", name="Cy", department="Payments", title="")
    dee = make_human(email="dee.o.brien@example.com", name='Dee "Dee" O Brien', title="engineer", manager=bob)
    services.human_set_status(actor=SYSTEM, human=cy, status=HumanStatus.LEFT)
    # Only Dee came from an IdP with a userName and names of its own. No SCIM service exists yet to
    # provision one, so its row is written directly.
    ScimUser.objects.create(
        human=dee, user_name="DOBrien", user_name_key="dobrien", given_name="Deirdre", family_name="O'Brien"
    )
    return {"ann": ann, "bob": bob, "cy": cy, "dee": dee}


def matching(filter: str) -> set[str]:
    return {h.name.split()[0] for h in Human.objects.filter(users_q(filter))}


# --- Operators -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ('userName eq "ann.lee@example.com"', {"Ann"}),
        ('userName eq "ANN.LEE@EXAMPLE.COM"', {"Ann"}),
        ('userName eq "dobrien"', {"Dee"}),
        ('userName eq "dee.o.brien@example.com"', set()),  # an IdP-set userName replaces the email
        ('userName ne "ann.lee@example.com"', {"Bob", "Cy", "Dee"}),
        ('userName co "STONE"', {"Bob"}),
        ('userName sw "ann."', {"Ann"}),
        ('userName ew "example.org"', {"Cy"}),
        ("userName pr", {"Ann", "Bob", "Cy", "Dee"}),
        ('userName gt "c"', {"Cy", "Dee"}),
        ('userName ge "cy@corp.example.org"', {"Cy", "Dee"}),
        ('userName lt "B"', {"Ann"}),
        ('userName le "bob.stone@example.com"', {"Ann", "Bob"}),
        ('externalId eq "OKTA-ann"', {"Ann"}),
        ('externalId eq "okta-ann"', set()),  # caseExact
        ('externalId ne "OKTA-ann"', {"Bob", "Cy", "Dee"}),  # no externalId is "not equal" too
        ("externalId pr", {"Ann"}),
        ("active eq true", {"Ann", "Bob", "Dee"}),
        ("active eq false", {"Cy"}),
        ("active ne true", {"Cy"}),
        ("active pr", {"Ann", "Bob", "Cy", "Dee"}),
        ('displayName eq "ann lee"', {"Ann"}),
        ('name.formatted co "STONE"', {"Bob"}),
        ('name.givenName eq "ann"', {"Ann"}),
        ('name.givenName eq "Cy"', {"Cy"}),
        ('name.givenName eq "Deirdre"', {"Dee"}),  # the IdP's given name, not the first word
        ('name.familyName eq "stone"', {"Bob"}),
        ('name.familyName eq "O\'Brien"', {"Dee"}),
        ("name.familyName pr", {"Ann", "Bob", "Dee"}),
        ('name.familyName sw "L"', {"Ann"}),
        ('emails.value eq "ann.lee@example.com"', {"Ann"}),
        ('emails co "corp"', {"Cy"}),
        ('emails[type eq "work"].value eq "Bob.Stone@example.com"', {"Bob"}),
        ('emails[type eq "home"].value eq "bob.stone@example.com"', set()),
        ('emails[type eq "work" and value co "stone"]', {"Bob"}),
        ('emails[not (type eq "work")]', set()),
        ("emails.primary eq true", {"Ann", "Bob", "Cy", "Dee"}),
        ('title eq "engineer"', {"Ann", "Dee"}),
        ("title pr", {"Ann", "Bob", "Dee"}),
        ('meta.resourceType eq "User"', {"Ann", "Bob", "Cy", "Dee"}),
        (f'{ENTERPRISE_USER}:department eq "payments"', {"Ann", "Cy"}),
        ('department eq "Risk"', {"Bob"}),  # an extension attribute named without its URN
        (f"{ENTERPRISE_USER}:department pr", {"Ann", "Bob", "Cy"}),
        (f"{ENTERPRISE_USER}:manager pr", {"Ann", "Dee"}),
        (f'{ENTERPRISE_USER}:manager.displayName eq "bob stone"', {"Ann", "Dee"}),
        ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "cy@corp.example.org"', {"Cy"}),
        ('USERNAME EQ "cy@corp.example.org"', {"Cy"}),
        ('title eq "O\\"Brien"', set()),  # an escaped quote in a JSON string
    ],
)
def test_each_operator_and_attribute(people: dict[str, Human], filter: str, expected: set[str]) -> None:
    assert matching(filter) == expected


def test_ids_and_manager_ids_compare_as_strings(people: dict[str, Human]) -> None:
    ann, bob = people["ann"], people["bob"]
    assert matching(f'id eq "{ann.pk}"') == {"Ann"}
    assert matching(f'id ne "{ann.pk}"') == {"Bob", "Cy", "Dee"}
    assert matching('id eq "not-a-number"') == set()
    assert matching(f'{ENTERPRISE_USER}:manager.value eq "{bob.pk}"') == {"Ann", "Dee"}
    # Entra checks a manager as `id eq "…" and manager eq "…"`, without sub-attribute or URN.
    assert matching(f'id eq "{ann.pk}" and manager eq "{bob.pk}"') == {"Ann"}


def test_dates_compare_chronologically(people: dict[str, Human]) -> None:
    ann = people["ann"]
    Human.objects.filter(pk=ann.pk).update(updated_at=datetime(2030, 1, 1, tzinfo=UTC))
    assert matching('meta.lastModified gt "2029-12-31T23:59:59Z"') == {"Ann"}
    assert matching('meta.lastModified ge "2030-01-01T00:00:00+00:00"') == {"Ann"}
    assert matching('meta.lastModified lt "2030-01-01T00:00:00Z"') == {"Bob", "Cy", "Dee"}
    assert matching('meta.lastModified eq "2030-01-01T00:00:00Z"') == {"Ann"}
    earliest = min(h.created_at for h in people.values()) - timedelta(seconds=1)
    assert matching(f'meta.created gt "{earliest.isoformat()}"') == {"Ann", "Bob", "Cy", "Dee"}
    assert matching(f'meta.created le "{earliest.isoformat()}"') == set()


# --- Precedence ------------------------------------------------------------------------------------


def test_and_binds_tighter_than_or(people: dict[str, Human]) -> None:
    # a or (b and c): the library's own grammar read this as (a or b) and c, which is {"Ann"} only.
    assert matching('title eq "Director" or department eq "Payments" and active eq true') == {"Bob", "Ann"}
    assert matching('department eq "Payments" and active eq true or title eq "Director"') == {"Ann", "Bob"}


def test_parentheses_group_and_not_negates_the_group(people: dict[str, Human]) -> None:
    assert matching('(title eq "Director" or department eq "Payments") and active eq true') == {"Ann", "Bob"}
    assert matching('not (department eq "Payments") and active eq true') == {"Bob", "Dee"}
    assert matching('not (department eq "Payments" or title pr)') == set()
    assert matching('not (department eq "Payments" or title pr) or userName sw "cy"') == {"Cy"}


# --- Groups ----------------------------------------------------------------------------------------


def test_group_filters(people: dict[str, Human]) -> None:
    # No SCIM group service exists yet: the groups are written directly.
    payments = ScimGroup.objects.create(display_name="Payments Team", external_id="G-1")
    payments.members.add(people["ann"], people["bob"])
    risk = ScimGroup.objects.create(display_name="Risk")
    risk.members.add(people["bob"])
    ScimGroup.objects.create(display_name="Empty")

    def groups(filter: str) -> list[str]:
        return sorted(g.display_name for g in ScimGroup.objects.filter(groups_q(filter)))

    assert groups('displayName eq "payments team"') == ["Payments Team"]
    assert groups('displayName sw "r"') == ["Risk"]
    assert groups('externalId eq "G-1"') == ["Payments Team"]
    assert groups(f'id eq "{risk.pk}"') == ["Risk"]
    # Bob is in two groups: each group is listed once.
    assert groups(f'members.value eq "{people["bob"].pk}"') == ["Payments Team", "Risk"]
    assert groups(f'members[value eq "{people["ann"].pk}"]') == ["Payments Team"]
    assert groups(f'id eq "{payments.pk}" and members eq "{people["ann"].pk}"') == ["Payments Team"]
    assert groups("members pr") == ["Payments Team", "Risk"]
    assert groups('members.display co "ann"') == ["Payments Team"]
    assert groups(f'not (members.value eq "{people["bob"].pk}")') == ["Empty"]


# --- Errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filter",
    [
        "",
        "   ",
        'userName eq "unterminated',
        'userName eq "a" and',
        "userName eq",
        '(userName eq "a"',
        'userName regex "a"',
        'userName eq "a" xor title pr',
        "userName ~ 1",
        'nosuch eq "a"',
        'name.nosuch eq "a"',
        f'{ENTERPRISE_USER}:nosuch eq "a"',
        'urn:example:other:2.0:User:userName eq "a"',
        'emails[nosuch eq "a"]',
        'emails[type eq "work"] eq "a"',
        "userName eq true",
        "userName eq 12",
        'active eq "perhaps"',
        "active gt true",
        'active co "t"',
        'meta.created co "2020"',
        'meta.created gt "yesterday"',
        "meta.created gt 12",
        'id co "1"',
        'id gt "1"',
        "id eq true",
        'emails.primary co "t"',
    ],
)
def test_a_filter_it_cannot_evaluate_is_an_invalid_filter(people: dict[str, Human], filter: str) -> None:
    with pytest.raises(ScimFilterError) as refused:
        users_q(filter)
    assert refused.value.scim_type == "invalidFilter"
    assert refused.value.status == 400
    assert refused.value.detail


def test_a_group_filter_on_a_user_attribute_is_an_invalid_filter() -> None:
    with pytest.raises(ScimFilterError):
        groups_q('userName eq "ann"')


def test_parsing_needs_no_database() -> None:
    # The module builds its parser at import and its Q objects without touching a model's rows.
    assert parse('a eq "1"') is not None


def test_split_name_is_the_first_word_and_the_rest() -> None:
    assert split_name("Ann Lee") == ("Ann", "Lee")
    assert split_name("Mary Ann van Dyke") == ("Mary", "Ann van Dyke")
    assert split_name("Cy") == ("Cy", "")


# --- SQLite ----------------------------------------------------------------------------------------

SQLITE_FILTERS = [
    'userName eq "ANN.LEE@example.com" or userName eq "dobrien"',
    'userName co "stone" and not (title eq "x")',
    'userName gt "c"',
    'externalId ne "OKTA-ann"',
    "active eq false",
    'name.givenName eq "deirdre" or name.familyName sw "l"',
    "name.familyName pr",
    'emails[type eq "work"].value ew ".org"',
    f'{ENTERPRISE_USER}:department eq "payments" and {ENTERPRISE_USER}:manager pr',
    'meta.lastModified gt "2000-01-01T00:00:00Z"',
    'title pr and not (title eq "engineer")',
]


def test_the_same_filters_select_the_same_humans_on_sqlite(people: dict[str, Human]) -> None:
    """`make run` without DATABASE_URL serves SQLite: mirror the humans into an in-memory SQLite database
    and run each filter's SQL there."""
    sqlite = SQLiteWrapper({**connection.settings_dict, "ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"})
    sqlite.settings_dict.update({"OPTIONS": {}, "TEST": {}, "HOST": "", "PORT": "", "USER": "", "PASSWORD": ""})
    try:
        with sqlite.schema_editor() as editor:
            editor.create_model(Human)
            editor.create_model(ScimUser)
        sqlite.disable_constraint_checking()  # Human.user points at auth_user, which is not mirrored
        for model in (Human, ScimUser):
            _copy_rows(model, sqlite)
        for text in SQLITE_FILTERS:
            on_postgres = set(Human.objects.filter(users_q(text)).values_list("pk", flat=True))
            assert on_postgres, f"{text} selects nobody: the comparison would prove nothing"
            query = Human.objects.filter(filter_q(text, USER_FILTER)).values_list("pk", flat=True).query
            sql, params = query.get_compiler(connection=sqlite).as_sql()
            with sqlite.cursor() as cursor:
                cursor.execute(sql, params)
                on_sqlite = {row[0] for row in cursor.fetchall()}
            assert on_sqlite == on_postgres, text
    finally:
        sqlite.close()


def _copy_rows(model: type[Model], target: Any) -> None:
    fields = model._meta.concrete_fields
    columns = ", ".join(target.ops.quote_name(f.column) for f in fields)
    marks = ", ".join("%s" for _ in fields)
    sql = f"INSERT INTO {target.ops.quote_name(model._meta.db_table)} ({columns}) VALUES ({marks})"
    with target.cursor() as cursor:
        for row in model._default_manager.all():
            cursor.execute(sql, [f.get_db_prep_save(getattr(row, f.attname), target) for f in fields])


def test_q_objects_are_plain_conditions() -> None:
    assert isinstance(users_q("active eq true"), Q)
