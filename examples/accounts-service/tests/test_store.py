import threading

import pytest

from accounts_service.store import InvalidUser, User, UsernameTaken, UserStore


def test_an_added_user_can_be_got() -> None:
    store = UserStore()
    assert store.add("ada", "Ada Lovelace") == User("ada", "Ada Lovelace")
    assert store.get("ada") == User("ada", "Ada Lovelace")
    assert len(store) == 1


def test_an_unknown_user_is_none() -> None:
    assert UserStore().get("nobody") is None


def test_a_taken_username_is_refused_and_the_first_account_kept() -> None:
    store = UserStore()
    store.add("ada", "Ada Lovelace")
    with pytest.raises(UsernameTaken, match="'ada' is taken"):
        store.add("ada", "Someone Else")
    assert store.get("ada") == User("ada", "Ada Lovelace")


@pytest.mark.parametrize("username", ["abc", "a_1", "x" * 32, "0123456789", "___"])
def test_valid_usernames_are_accepted(username: str) -> None:
    assert UserStore().add(username, "Someone").username == username


@pytest.mark.parametrize(
    "username",
    ["", "ab", "x" * 33, "Ada", "ada lovelace", "ada-l", "ada.l", "adé", "ada\n", 42, None],
)
def test_invalid_usernames_are_refused(username: object) -> None:
    store = UserStore()
    with pytest.raises(InvalidUser, match="invalid username"):
        store.add(username, "Someone")  # type: ignore[arg-type]
    assert len(store) == 0


@pytest.mark.parametrize("display_name", ["", "   ", "x" * 101, 7, None])
def test_invalid_display_names_are_refused(display_name: object) -> None:
    with pytest.raises(InvalidUser, match="invalid display_name"):
        UserStore().add("ada", display_name)  # type: ignore[arg-type]


def test_concurrent_adds_of_one_name_make_exactly_one_account() -> None:
    store = UserStore()
    start = threading.Barrier(16)
    outcomes: list[str] = []

    def add(i: int) -> None:
        start.wait()
        try:
            store.add("ada", f"Ada {i}")
            outcomes.append("added")
        except UsernameTaken:
            outcomes.append("taken")

    threads = [threading.Thread(target=add, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["added"] + ["taken"] * 15
    assert len(store) == 1
