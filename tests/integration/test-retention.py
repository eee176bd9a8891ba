# SPDX-License-Identifier: LGPL-2.1-or-later
"""Retention: finished jobs are purged Retention= after they finished, with their spool files;
unfinished ones never; the purge survives restarts and Reload changes the period."""

import os
import time

import dbus

from jobdtest import *


def set_retention(value):
    with open("/etc/jobd/jobd.conf", "w") as f:
        f.write(f"[Manager]\nRetention={value}\n")
    manager().Reload()


def gone(path):
    got, _ = call_error(job_props, path)
    return got is not None


def spool(jid):
    return f"/var/lib/jobd/spool/{int(jid)}"


write_type("keep", "[Type]\nDescription=For workers\n")
set_retention("3s")

# a worker's job with an output: its spool folder exists until the purge
jid, path = submit("keep", "{}")
c = claim(["keep"])
complete(jid, c.token, '{"done": true}', {"out.txt": memfd_with(b"payload\n")})
eq(str(job_props(path)["Status"]), "succeeded", "the job finished")
ok(os.path.isdir(spool(jid)), "its outputs are in the spool")
waiting, wpath = submit("keep", "{}")          # stays pending: never purged
finished_at = int(job_props(path)["FinishedUSec"])

wait_for(lambda: gone(path), 15, "the purge of the finished job")
t = int(time.time() * 1e6)
ok(t >= finished_at + 3_000_000, "it went no earlier than Retention after FinishedUSec", t - finished_at)
ok(t < finished_at + 3_000_000 + 2_000_000, "and not much later (2 s)", t - finished_at)
ok(not os.path.exists(spool(jid)), "its spool folder went with it")
ids = [int(r[0]) for r in manager().List(dbus.Dictionary({}, signature="sv"))]
ok(int(jid) not in ids and int(waiting) in ids, "List no longer has it; the pending job is kept", ids)
expect_error("Cancel of a purged job", ERR + "NoSuchJob", lambda: job(path).Cancel())
eq(str(job_props(wpath)["Status"]), "pending", "an unfinished job is never purged")

# the purge is durable: after a restart the job is still gone, and ids are never reused
stop_jobd()
ok(gone(path), "after a restart the purged job stays gone")
nid, npath = submit("keep", "{}")
ok(int(nid) > int(waiting), "ids are not reused after a purge", (nid, waiting))
for p in (wpath, npath):
    job(p).Cancel()

# a job that finished while jobd was stopped long enough is purged soon after it starts again
set_retention("1h")
jid2, path2 = submit("keep", "{}")
c = claim(["keep"])
complete(jid2, c.token, "{}")
stop_jobd()
set_retention("2s")                           # the Reload activates jobd with the shorter period
wait_for(lambda: gone(path2), 10, "the purge after restart and Reload")
ok(gone(path2), "a shorter Retention applies on Reload to jobs that finished before")

# Retention=infinity keeps them
set_retention("infinity")
jid3, path3 = submit("keep", "{}")
c = claim(["keep"])
complete(jid3, c.token, "{}")
stop_jobd()
eq(str(job_props(path3)["Status"]), "succeeded", "Retention=infinity keeps finished jobs")

os.unlink("/etc/jobd/jobd.conf")
done()
