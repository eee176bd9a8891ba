# SPDX-License-Identifier: LGPL-2.1-or-later
"""The live objects match the shipped contract, dbus/org.jobd.Jobd1.xml: every method with its
argument names, types and directions, every signal and every property with type and access."""

import os
import xml.etree.ElementTree as ET

from jobdtest import *

write_type("echo", "[Type]\nDescription=Echo\n")
jid, path = submit("echo", "{}")

shipped = ET.parse(os.path.join(PREFIX, "share/dbus-1/interfaces/org.jobd.Jobd1.xml")).getroot()


def members(iface):
    out = set()
    for el in iface:
        if el.tag in ("method", "signal"):
            args = tuple((a.get("name"), a.get("type"), a.get("direction", "out" if el.tag == "signal" else "in"))
                         for a in el.findall("arg"))
            out.add((el.tag, el.get("name"), args))
        elif el.tag == "property":
            out.add(("property", el.get("name"), el.get("type"), el.get("access")))
    return out


def live(obj_path, name):
    xml = bus().get_object(BUS_NAME, obj_path).Introspect(dbus_interface="org.freedesktop.DBus.Introspectable")
    for iface in ET.fromstring(xml).findall("interface"):
        if iface.get("name") == name:
            return members(iface)
    return set()


for name, obj_path in (("org.jobd.Jobd1.Manager", "/org/jobd/Jobd1"), ("org.jobd.Jobd1.Job", str(path))):
    want = members(shipped.find(f"interface[@name='{name}']"))
    got = live(obj_path, name)
    ok(len(want) > 0, f"{name} is in the shipped XML")
    eq(sorted(got - want), [], f"{name}: nothing live that the XML lacks")
    eq(sorted(want - got), [], f"{name}: nothing in the XML that is not live")

err = shipped.iter()
text = open(os.path.join(PREFIX, "share/dbus-1/interfaces/org.jobd.Jobd1.xml")).read()
for e in ("UnknownType", "InvalidParameters", "InvalidOption", "NoSuchJob", "InvalidState", "StaleToken",
          "TooLarge", "QuotaExceeded"):
    ok(e in text, f"the XML documents the error {e}")

done()
