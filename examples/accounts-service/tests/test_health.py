from accounts_service import health, smoke


def test_the_health_check_passes() -> None:
    assert health.main() == 0


def test_the_smoke_test_passes() -> None:
    assert smoke.main() == 0
