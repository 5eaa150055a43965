"""The tally the CI scripts share: each check passes or prints what failed, and the summary
line ('N passed, N failed') is what CI reads."""


_failures = []
_passes = 0


def check(condition, message):
    """Counts a check; prints the message when it fails."""
    global _passes
    if condition:
        _passes += 1
    else:
        _failures.append(message)
        print(f"FAIL: {message}")


def finish(name):
    """Prints the summary line and returns the exit status."""
    print(f"{name}: {_passes} passed, {len(_failures)} failed")
    return 1 if _failures else 0
