from collections.abc import Iterator
from http.client import HTTPConnection
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from accounts_service.app import MAX_BODY, health
from accounts_service.client import call, get, post, running

ADA = {"username": "ada", "display_name": "Ada Lovelace"}


@pytest.fixture
def port() -> Iterator[int]:
    with running() as port:
        yield port


def post_raw(port: int, data: bytes) -> int:
    """POST ``data`` as it is to ``/users``; the status."""
    request = Request(f"http://127.0.0.1:{port}/users", data=data, method="POST")
    try:
        with urlopen(request, timeout=5) as response:  # nosec B310 - http:// on loopback, built here
            return response.status
    except HTTPError as error:
        with error:
            return error.code


def test_health_says_ok() -> None:
    assert health()["status"] == "ok"


def test_health_over_http(port: int) -> None:
    status, body = get(port, "/health")
    assert (status, body["status"]) == (200, "ok")


def test_a_created_user_can_be_read_back(port: int) -> None:
    assert post(port, "/users", ADA) == (201, ADA)
    assert get(port, "/users/ada") == (200, ADA)


def test_an_unknown_user_is_404(port: int) -> None:
    status, body = get(port, "/users/nobody")
    assert status == 404
    assert "nobody" in str(body["error"])


def test_a_taken_username_is_409(port: int) -> None:
    post(port, "/users", ADA)
    status, body = post(port, "/users", {"username": "ada", "display_name": "Impostor"})
    assert status == 409
    assert "taken" in str(body["error"])
    assert get(port, "/users/ada") == (200, ADA)


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ada"},
        {"display_name": "Ada"},
        {},
        ["ada", "Ada"],
        "ada",
        0,
        {"username": "Ada!", "display_name": "Ada"},
        {"username": "ab", "display_name": "Ada"},
        {"username": "ada", "display_name": ""},
        {"username": 7, "display_name": "Ada"},
    ],
)
def test_a_bad_user_is_400(port: int, body: object) -> None:
    status, answer = call(port, "POST", "/users", body)
    assert status == 400
    assert answer["error"]
    assert get(port, "/users/ada")[0] == 404


def test_a_body_that_is_not_json_is_400(port: int) -> None:
    assert post_raw(port, b"{not json") == 400
    assert post_raw(port, b"\xff\xfe") == 400
    assert post_raw(port, b"") == 400
    assert post_raw(port, b"null") == 400


def test_a_body_that_is_too_large_is_413_before_it_is_read(port: int) -> None:
    # Only the headers are sent: the service must answer from Content-Length alone, not wait for the body.
    connection = HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.putrequest("POST", "/users")
        connection.putheader("Content-Length", str(MAX_BODY + 1))
        connection.endheaders()
        assert connection.getresponse().status == 413
    finally:
        connection.close()


def test_unknown_routes_are_404(port: int) -> None:
    assert get(port, "/nowhere")[0] == 404
    assert post(port, "/health", {})[0] == 404
    assert post(port, "/users/ada", ADA)[0] == 404


def test_each_server_has_its_own_accounts() -> None:
    with running() as first:
        post(first, "/users", ADA)
        with running() as second:
            assert get(second, "/users/ada")[0] == 404
        assert get(first, "/users/ada") == (200, ADA)
