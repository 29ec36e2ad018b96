#!/usr/bin/env python3
"""A dynamic inventory as Ansible's script plugin runs them: --list prints every group and
_meta.hostvars; --host H prints one host's vars."""
import json
import sys

GROUPS = {
    "app": {"hosts": ["app1.example.com", "app2.example.com"], "vars": {"tier": "app"}},
    "cache": ["redis1.example.com"],
    "backend": {"children": ["app", "cache"], "vars": {"dc": "fra1"}},
}
HOSTVARS = {
    "app1.example.com": {"ansible_host": "10.1.0.1", "weight": 3},
    "app2.example.com": {"ansible_host": "10.1.0.2"},
    "redis1.example.com": {"maxmemory": "2gb"},
}

if sys.argv[1:] == ["--list"]:
    print(json.dumps({**GROUPS, "_meta": {"hostvars": HOSTVARS}}))
elif sys.argv[1:2] == ["--host"]:
    print(json.dumps(HOSTVARS.get(sys.argv[2], {})))
else:
    sys.exit("usage: dynamic.py --list | --host HOST")
