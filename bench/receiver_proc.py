"""The project's `CallbackReceiver` in a process of its own (its own GIL, like a real receiver).

    python -m bench.receiver_proc

Prints its URL on the first line; then answers each `count` line on stdin with how many
requests arrived; ends when stdin closes.
"""

from __future__ import annotations

import sys

from mock_server.receiver import CallbackReceiver


def main() -> None:
    with CallbackReceiver() as receiver:
        print(receiver.url, flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                print(len(receiver.received), flush=True)


if __name__ == "__main__":
    main()
