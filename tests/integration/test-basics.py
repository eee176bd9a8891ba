# SPDX-License-Identifier: LGPL-2.1-or-later
"""Activation, Submit, properties, List filters, ListTypes, GetStats, Cancel, ownership."""

import dbus

from jobdtest import *

# no Exec=: external workers' types, so their jobs stay pending for these tests
ECHO_TYPE = """[Type]
Description=Echo the parameters back
Timeout=1min

[Resources]
MemoryMax=64M
"""

write_type("echo", ECHO_TYPE)
write_type("hold", "[Type]\nDescription=Held\n")
write_type("cat", "[Type]\nDescription=Cat\nExec=/bin/cat\n")
write_type("broken", "[Type]\nDescription=Broken\nTimeout=fast\n")

eq(systemctl("is-active", "jobd.service").stdout.strip(), "inactive", "jobd is not running before the first call")

jid, path = submit("hold", '{"argv": ["true"]}', {"priority": dbus.Int32(5)})
ok(jid >= 1, "Submit returns an id")
eq(str(path), f"/org/jobd/Jobd1/job/{jid}", "Submit returns the job's object path")
eq(systemctl("is-active", "jobd.service").stdout.strip(), "active", "the first call activated jobd.service through systemd")

p = job_props(path)
eq(int(p["Id"]), int(jid), "Id property")
eq(str(p["Type"]), "hold", "Type property")
eq(str(p["Status"]), "pending", "a new job is pending")
eq(int(p["Owner"]), 0, "Owner is the caller's uid")
eq(int(p["Priority"]), 5, "Priority comes from the option")
eq(str(p["Parameters"]), '{"argv": ["true"]}', "owner reads Parameters")
ok(int(p["SubmittedUSec"]) > 1_600_000_000_000_000, "SubmittedUSec is a realtime timestamp")
eq(int(p["ExitStatus"]), -1, "ExitStatus is -1 before it ran")
for name in ("Result", "Error", "ProgressMessage", "Worker", "Unit"):
    eq(str(p[name]), "", f"{name} is empty on a new job")

tree = run("busctl", "tree", "--list", "org.jobd.Jobd1").stdout.split()
ok(str(path) in tree, "busctl tree lists the job object", tree)

# more jobs for the filters
ids = [int(submit("echo", '{"n": %d}' % i)[0]) for i in range(5)]
ok(ids == list(range(int(jid) + 1, int(jid) + 6)), "ids are consecutive", ids)

rows = manager().List(dbus.Dictionary({}, signature="sv"))
eq([int(r[0]) for r in rows], [int(jid)] + ids, "List returns every job, oldest first")
eq(str(rows[0][3]), "root", "List shows the owner's name")
rows = manager().List({"type": dbus.Array(["echo"], signature="s")})
eq([int(r[0]) for r in rows], ids, "List filters by type")
rows = manager().List({"limit": dbus.UInt32(2), "after_id": dbus.UInt64(ids[0])})
eq([int(r[0]) for r in rows], ids[1:3], "List pages with limit and after_id")
rows = manager().List({"owner": dbus.UInt32(2002)})
eq(len(rows), 0, "List filters by owner")

types = {str(t[0]): t for t in manager().ListTypes()}
ok("exec" in types and bool(types["exec"][2]["builtin"]), "ListTypes has the built-in exec type")
ok("cat" in types and list(types["cat"][2]["exec"]) == ["/bin/cat"], "ListTypes has a configured type with its Exec", types.get("cat"))
ok("echo" in types and bool(types["echo"][2]["external"]), "a type without Exec= is for external workers")
eq(int(types["echo"][2]["memory_max"]), 64 * 1024 * 1024, "a type's MemoryMax is parsed")
ok("broken" not in types, "a bad type file is skipped")
log = run("journalctl", "-q", "--no-pager", "-u", "jobd.service").stdout
ok("broken.type:3" in log, "the bad type file is logged with file and line", log[-2000:])

stats = manager().GetStats("")
eq(int(stats["pending"]), 6, "GetStats counts pending jobs")
eq(int(stats["queue_depth_by_type"]["echo"]), 5, "GetStats has the queue depth per type")
stats = manager().GetStats("echo")
eq(int(stats["total"]), 5, "GetStats for one type")
expect_error("GetStats of an unknown type", ERR + "UnknownType", manager().GetStats, "nope")

# ownership: another uid sees no parameters and may not cancel
other = run("busctl", "get-property", "org.jobd.Jobd1", str(path), "org.jobd.Jobd1.Job", "Parameters", user=2002)
eq(other.stdout.strip(), 's ""', "another user reads Parameters as empty")
other = run("busctl", "get-property", "org.jobd.Jobd1", str(path), "org.jobd.Jobd1.Job", "Status", user=2002)
eq(other.stdout.strip(), 's "pending"', "another user reads Status")
other = run("gdbus", "call", "--system", "--dest", "org.jobd.Jobd1", "--object-path", str(path),
            "--method", "org.jobd.Jobd1.Job.Cancel", user=2002)
ok(other.returncode != 0 and "AccessDenied" in other.stderr and "only its owner, root or an administrator" in other.stderr,
   "another user may not cancel: AccessDenied with a message", other.stderr)
eq(str(job_props(path)["Status"]), "pending", "a refused Cancel changes nothing")

# a user's own job
r = run("busctl", "call", "org.jobd.Jobd1", "/org/jobd/Jobd1", "org.jobd.Jobd1.Manager", "Submit", "ssa{sv}",
        "echo", '{"mine": true}', "0", user=2002)
ok(r.returncode == 0, "an unprivileged user submits", r.stderr)
uid_job = r.stdout.split()[1] if r.returncode == 0 else "0"
p = job_props(f"/org/jobd/Jobd1/job/{uid_job}")
eq(int(p["Owner"]), 2002, "the unprivileged submitter owns the job")
eq(str(p["Parameters"]), '{"mine": true}', "root reads another user's Parameters")
r = run("busctl", "call", "org.jobd.Jobd1", f"/org/jobd/Jobd1/job/{uid_job}", "org.jobd.Jobd1.Job", "Cancel", user=2002)
ok(r.returncode == 0, "the owner cancels their job", r.stderr)

job(path).Cancel()
p = job_props(path)
eq(str(p["Status"]), "cancelled", "Cancel of a pending job cancels it")
ok("Cancelled by uid 0" in str(p["Error"]), "Error says who cancelled", p["Error"])
ok(int(p["FinishedUSec"]) >= int(p["SubmittedUSec"]), "FinishedUSec is set")
expect_error("Cancel of a cancelled job", ERR + "InvalidState", job(path).Cancel)
expect_error("a job that does not exist", ERR + "NoSuchJob", job("/org/jobd/Jobd1/job/999999").Cancel)

# SubmitUsers= and SubmitGroups= restrict who submits (jobdtest1 is in group jobdadm)
write_type("restricted", "[Type]\nDescription=Restricted\nSubmitUsers=jobdtest2\n")
write_type("groupwise", "[Type]\nDescription=Group only\nSubmitGroups=jobdadm\n")
manager().Reload()
submit_as = lambda t, u, **kw: run("gdbus", "call", "--system", "--dest", "org.jobd.Jobd1", "--object-path",
                                   "/org/jobd/Jobd1", "--method", "org.jobd.Jobd1.Manager.Submit", t, "{}", "{}",
                                   user=u, **kw)
r = submit_as("restricted", 2001, init_groups=True)
ok(r.returncode != 0 and "AccessDenied" in r.stderr and "SubmitUsers=" in r.stderr,
   "a user not in SubmitUsers= is refused with AccessDenied", r.stderr)
ok(submit_as("restricted", 2002).returncode == 0, "a user in SubmitUsers= submits")
r = submit_as("groupwise", 2001, init_groups=True)
ok(r.returncode == 0, "a member of a group in SubmitGroups= submits (groups come from the bus)", r.stderr)
r = submit_as("groupwise", 2001)
ok(r.returncode != 0 and "AccessDenied" in r.stderr, "the same user without that group is refused", r.stderr)

# a group whose entry is bigger than NSS's usual buffer (many members) still admits its members
members = ",".join(["jobdtest2"] + [f"member{i:05d}" for i in range(2000)])
with open("/etc/group") as f:                     # the world's /etc overlay, never the host's
    groups_before = f.read()
try:
    with open("/etc/group", "a") as f:
        f.write(f"jobdbig:x:2300:{members}\n")
    write_type("bigwise", "[Type]\nDescription=Big group only\nSubmitGroups=jobdbig\n")
    manager().Reload()
    r = submit_as("bigwise", 2002, init_groups=True)
    ok(r.returncode == 0, f"a member of a group with a {len(members)}-byte member list submits", r.stderr)
finally:
    with open("/etc/group", "w") as f:            # later tests count jobdtest2's groups
        f.write(groups_before)

# Reload picks up a new type; root only
write_type("later", "[Type]\nDescription=Added later\n")
r = run("gdbus", "call", "--system", "--dest", "org.jobd.Jobd1", "--object-path", "/org/jobd/Jobd1",
        "--method", "org.jobd.Jobd1.Manager.Reload", user=2002)
ok(r.returncode != 0 and "AccessDenied" in r.stderr, "Reload is refused to other users", r.stderr)
manager().Reload()
ok("later" in [str(t[0]) for t in manager().ListTypes()], "Reload reads new type files")

done()
