# SPDX-License-Identifier: LGPL-2.1-or-later
"""A subscriber sees JobNew, JobChanged and PropertiesChanged, and protected values never travel
in a broadcast."""

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

from jobdtest import *

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
write_type("echo", "[Type]\nDescription=Echo\n")
b = dbus.SystemBus()
submit("echo", "{}", b=b)           # activate first, so the subscription sees the owner

events = []
loop = GLib.MainLoop()


def on_signal(*args, **kw):
    events.append((kw["member"], kw["path"], args))


b.add_signal_receiver(on_signal, bus_name="org.jobd.Jobd1", member_keyword="member", path_keyword="path")


def wait_events(pred, timeout=10):
    def check():
        if pred():
            loop.quit()
            return False
        return True
    GLib.timeout_add(10, check)
    GLib.timeout_add(timeout * 1000, loop.quit)
    loop.run()
    return pred()


m = dbus.Interface(b.get_object("org.jobd.Jobd1", "/org/jobd/Jobd1"), "org.jobd.Jobd1.Manager")
jid, path = m.Submit("echo", '{"secret": "s3cret"}', dbus.Dictionary({}, signature="sv"))
got = wait_events(lambda: any(e[0] == "JobNew" for e in events))
ok(got, "JobNew is emitted", events)
new = [e for e in events if e[0] == "JobNew"]
if new:
    eq((int(new[0][2][0]), str(new[0][2][1]), str(new[0][2][2])), (int(jid), str(path), "echo"),
       "JobNew carries id, path and type")

events.clear()
dbus.Interface(b.get_object("org.jobd.Jobd1", path), "org.jobd.Jobd1.Job").Cancel()
wait_events(lambda: any(e[0] == "PropertiesChanged" for e in events) and any(e[0] == "JobChanged" for e in events))
changed = [e for e in events if e[0] == "JobChanged"]
ok(changed and str(changed[0][2][2]) == "cancelled" and int(changed[0][2][0]) == int(jid),
   "JobChanged carries the new status", events)
props = [e for e in events if e[0] == "PropertiesChanged" and e[1] == path]
ok(props and props[0][2][1].get("Status") == "cancelled", "PropertiesChanged carries the new Status", props)
ok(props and "Error" in props[0][2][2] and "Error" not in props[0][2][1],
   "the protected Error property is only invalidated, its value not broadcast", props)
ok(all("s3cret" not in repr(e) for e in events), "parameters never appear in a signal")

done()
