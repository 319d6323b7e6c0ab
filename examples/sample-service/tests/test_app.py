from sample_service.app import add, health, serve
from sample_service.client import get


def test_add() -> None:
    assert add(2, 3) == 5


def test_health_says_ok() -> None:
    assert health()["status"] == "ok"


def test_the_service_answers_over_http() -> None:
    server = serve()
    try:
        assert get(server.server_address[1], "/add?a=1.5&b=2") == (200, {"sum": 3.5})
    finally:
        server.shutdown()
