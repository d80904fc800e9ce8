"""What `docker logs -f --timestamps [--since T] CONTAINER` is on the fake cluster's VMs.

Prints a timestamped line (RFC 3339, nanoseconds, as docker does) every LINE_EVERY_S (or the
seconds after an optional `--every S`) until it is killed (the remote wrapper kills it when the
ssh channel closes).
"""

import sys
import time

LINE_EVERY_S = 0.2


def main(argv: list[str]) -> int:
    container = argv[-1]
    every_s = float(argv[argv.index("--every") + 1]) if "--every" in argv else LINE_EVERY_S
    n = 0
    while True:
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"
        sys.stdout.write(f"{stamp} {container} line {n}\n")
        sys.stdout.flush()
        n += 1
        time.sleep(every_s)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
