#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A long-polling jobd worker in Python (python3-dbus).

Claims jobs of the given types, waiting up to --wait seconds per Claim (jobd answers as soon
as a job comes, and id 0 when none came), reports Progress and Log as it works, renews its
lease with Heartbeat when it runs long, and ends each job with Complete, or Fail when the work
raised.

Relies on leases and tokens: the claim is an attempt named by a random token, which every call
about the job carries; a worker whose lease ran out, or whose job was cancelled, gets
StaleToken and changes nothing. The claim is tracked (track=True): should this process die,
jobd takes the job back at once and retries it. Complete is answered once it is on disk
(durability): after the answer the result is never lost.

usage: worker.py [--wait SECONDS] [--max-jobs N] TYPE...
"""

import argparse
import json
import sys
import time

import dbus

BUS_NAME = "org.jobd.Jobd1"
MANAGER_PATH = "/org/jobd/Jobd1"


def work(numbers, report):
    """The job itself: statistics of a list, in steps that report progress."""
    if not numbers or not all(isinstance(x, (int, float)) for x in numbers):
        raise ValueError("parameters must be {\"numbers\": [a non-empty list of numbers]}")
    total = 0
    steps = 4
    chunk = (len(numbers) + steps - 1) // steps
    for i in range(0, len(numbers), chunk):
        total += sum(numbers[i:i + chunk])
        report(min(99, (i + chunk) * 100 // len(numbers)), f"summed {min(i + chunk, len(numbers))} numbers")
    return {"count": len(numbers), "sum": total, "mean": total / len(numbers),
            "min": min(numbers), "max": max(numbers)}


def handle(bus, job_id, token, parameters, info):
    path = f"{MANAGER_PATH}/job/{job_id}"
    job = dbus.Interface(bus.get_object(BUS_NAME, path, introspect=False), "org.jobd.Jobd1.Job")
    deadline_usec = int(info.get("deadline_usec", 0))
    lease_usec = deadline_usec - time.time() * 1e6

    def report(percent, message):
        nonlocal deadline_usec
        job.Progress(token, dbus.UInt32(percent), message)
        # renew the lease (by the type's Timeout=: extend_usec 0) once a third of it is left
        if deadline_usec - time.time() * 1e6 < lease_usec / 3:
            deadline_usec = int(job.Heartbeat(token, dbus.UInt64(0)))

    job.Log(token, f"attempt {int(info.get('attempt', 1))} of job {job_id} on {bus.get_unique_name()}")
    try:
        result = work(json.loads(parameters or "{}").get("numbers"), report)
    except ValueError as e:
        # bad parameters will not get better: no retry
        job.Fail(token, str(e), dbus.Dictionary({"retry": dbus.Boolean(False)}, signature="sv"))
        return "failed"
    except Exception as e:
        # retried after the type's backoff while attempts remain
        job.Fail(token, f"{type(e).__name__}: {e}", dbus.Dictionary({}, signature="sv"))
        return "failed, to be retried"
    job.Progress(token, dbus.UInt32(100), "done")
    job.Complete(token, json.dumps(result), dbus.Dictionary({}, signature="sv"))
    return "succeeded"


def main():
    ap = argparse.ArgumentParser(description="A long-polling jobd worker.")
    ap.add_argument("--wait", type=float, default=30, help="seconds one Claim waits (default 30)")
    ap.add_argument("--max-jobs", type=int, default=0, help="exit after this many jobs (0: never)")
    ap.add_argument("types", nargs="+")
    args = ap.parse_args()

    bus = dbus.SystemBus()
    manager = dbus.Interface(bus.get_object(BUS_NAME, MANAGER_PATH), "org.jobd.Jobd1.Manager")
    done = 0
    while not args.max_jobs or done < args.max_jobs:
        # long poll: answered when a job comes, or with id 0 after wait_usec
        job_id, token, type_, parameters, info = manager.Claim(
            dbus.Array(args.types, signature="s"), dbus.UInt64(int(args.wait * 1e6)),
            dbus.Dictionary({"track": dbus.Boolean(True)}, signature="sv"),
            timeout=args.wait + 30)
        if job_id == 0:
            continue
        try:
            outcome = handle(bus, int(job_id), str(token), str(parameters), dict(info))
        except dbus.DBusException as e:
            if e.get_dbus_name() != "org.jobd.Jobd1.Error.StaleToken":
                raise
            # the attempt is no longer ours (lease ran out, job cancelled): drop it
            outcome = "lost: " + e.get_dbus_message()
        print(f"job {int(job_id)} ({type_}): {outcome}", file=sys.stderr, flush=True)
        done += 1


if __name__ == "__main__":
    main()
