"""Run a command with SIGINT and SIGTERM at their defaults:
`python -m pdm_assets.dev.default_signals CMD ARGS...` replaces itself with CMD.

`make ui` starts `dagster dev` as a background job of its shell (so that the shell can stop the
warm Spark server after it), and a shell without job control starts background jobs with SIGINT
ignored. Dagster maps SIGTERM onto whatever SIGINT does, so that `dagster dev` then ignored
SIGTERM too, and a service manager could only stop it with SIGKILL. A signal left at its default
survives exec, and Python installs its KeyboardInterrupt handler for it again.
"""

import os
import signal
import sys


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -m pdm_assets.dev.default_signals CMD [ARGS...]")
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
