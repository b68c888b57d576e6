"""The zone's `waiting_room` section as the config loader sees it: keys, rooms, errors by line."""

from __future__ import annotations

import pytest

from originguard.config import ConfigError, dump, loads

BASE = """\
zones:
  - name: site
    hostnames: [site.test, "*.shop.test"]
    pools: [{name: main, origins: [{address: "127.0.0.1:9"}]}]
    waiting_room:
"""


def _load(section: str, env: dict[str, str] | None = None) -> object:
    return loads(BASE + section, "edge.yaml", env=env or {"KEY": "0123456789abcdef-key"})


def test_rooms_with_a_key_from_the_environment_load_and_dump_redacted() -> None:
    config = _load(
        """\
      keys: [{id: k2, secret: "${KEY}"}, {id: k1, secret: older-secret-0123456}]
      rooms:
        - {name: sale, host: a.shop.test, path: /sale, total_active_users: 5,
           new_users_per_minute: 5, session_duration: 10m}
"""
    )
    printed = dump(config)  # type: ignore[arg-type]
    assert "0123456789abcdef-key" not in printed and "***" in printed
    assert "session_duration: 600.0" in printed


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "      rooms: [{name: a, host: site.test, total_active_users: 1, "
            "new_users_per_minute: 1}]\n",
            "edge.yaml:5: zones.0.waiting_room.keys: at least one ticket key",
        ),
        (
            "      keys: [{id: k, secret: short}]\n",
            "zones.0.waiting_room.keys.0.secret",
        ),
        (
            "      keys: [{id: k, secret: 0123456789abcdef0}]\n"
            "      rooms:\n"
            "        - {name: a, host: site.test, total_active_users: 1, new_users_per_minute: 1}\n"
            "        - {name: a, host: site.test, path: /x, total_active_users: 1,"
            " new_users_per_minute: 1}\n",
            "edge.yaml:9: zones.0.waiting_room.rooms.1.name: room 'a' is defined twice",
        ),
        (
            "      keys: [{id: k, secret: 0123456789abcdef0}]\n"
            "      rooms:\n"
            "        - {name: a, host: site.test, total_active_users: 1, new_users_per_minute: 1}\n"
            "        - {name: b, host: site.test, total_active_users: 1,"
            " new_users_per_minute: 1}\n",
            "zones.0.waiting_room.rooms.1.path: another room already covers site.test/",
        ),
        (
            "      keys: [{id: k, secret: 0123456789abcdef0}]\n"
            "      rooms:\n"
            "        - {name: a, host: other.test, total_active_users: 1,"
            " new_users_per_minute: 1}\n",
            "edge.yaml:8: zones.0.waiting_room.rooms.0.host: host 'other.test' is not one of",
        ),
    ],
)
def test_bad_sections_are_refused_with_file_line_and_path(section: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(section)
    assert any(message in line for line in caught.value.messages), caught.value.messages


def test_unset_key_variable_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        loads(BASE + '      keys: [{id: k, secret: "${NOPE}"}]\n', "edge.yaml", env={})
    assert "environment variable NOPE is not set" in caught.value.messages[0]


KEY = "      keys: [{id: k, secret: 0123456789abcdef0}]\n      rooms:\n"
ROOM = (
    "        - name: {name}\n          host: site.test\n          total_active_users: 1\n"
    "          new_users_per_minute: 1\n"
)


def test_room_expression_that_does_not_compile_is_refused_with_line_and_caret() -> None:
    section = KEY + ROOM.format(name="a") + "          expression: http.request.method eq\n"
    with pytest.raises(ConfigError) as caught:
        _load(section)
    message = "\n".join(caught.value.messages)
    assert 'edge.yaml:12: zones.0.waiting_room.rooms.0.expression: room "a":' in message
    assert "1 | http.request.method eq\n" in message
    assert message.rstrip().endswith("^")


def test_bypass_expression_is_compiled_with_the_configs_lists() -> None:
    bypass = "          bypass: {expression: 'ip.src in $monitoring'}\n"
    with pytest.raises(ConfigError) as caught:
        _load(KEY + ROOM.format(name="a") + bypass)
    message = "\n".join(caught.value.messages)
    assert 'zones.0.waiting_room.rooms.0.bypass.expression: room "a bypass"' in message
    assert "monitoring" in message

    config = _load(KEY + ROOM.format(name="a") + bypass + "lists: {monitoring: [10.0.0.0/8]}\n")
    assert config.zones[0].waiting_room.rooms[0].bypass.expression == "ip.src in $monitoring"  # type: ignore[attr-defined]


def test_rooms_on_one_path_need_different_expressions_and_cookies() -> None:
    a = ROOM.format(name="a") + "          expression: 'http.request.method eq \"POST\"'\n"
    b = ROOM.format(name="b")
    with pytest.raises(ConfigError) as caught:
        _load(KEY + a + b)
    assert any(
        "rooms.1.cookie_suffix: another room on site.test/ uses the cookie __ogwaitingroom" in m
        for m in caught.value.messages
    ), caught.value.messages

    assert _load(KEY + a + b + "          cookie_suffix: b\n") is not None
