"""Print where the rld package installs, relative to the prefix given as argv[1].

The interpreter's own site directories that lie under the prefix and are on its sys.path
(Debian: /usr/local -> lib/python3.X/dist-packages, /usr -> lib/python3/dist-packages; a
venv -> lib/python3.X/site-packages), the shortest if several; for any other prefix the
standard posix_prefix layout (lib/python3.X/site-packages: add it to PYTHONPATH)."""
import os
import sys
import sysconfig

prefix = os.path.normpath(os.path.abspath(sys.argv[1]))
on_path = {os.path.normpath(p) for p in sys.path if p}
found = []
for scheme in sysconfig.get_scheme_names():
    if not scheme.startswith(("posix", "deb", "venv")) or scheme.endswith(("_user", "_home")):
        continue
    try:
        p = os.path.normpath(sysconfig.get_path("platlib", scheme))
    except KeyError:
        continue
    if p in on_path and p.startswith(prefix + os.sep):
        found.append(os.path.relpath(p, prefix))
if found:
    print(min(found, key=lambda r: (r.count(os.sep), r)))
else:
    p = sysconfig.get_path("platlib", "posix_prefix",
                           vars={"base": prefix, "platbase": prefix,
                                 "installed_base": prefix, "installed_platbase": prefix})
    print(os.path.relpath(p, prefix))
