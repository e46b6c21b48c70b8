"""Third-round hostile submissions: flood. Each case is graded with the others in tests/test_hostile.py."""


def cases() -> list:
    return []
