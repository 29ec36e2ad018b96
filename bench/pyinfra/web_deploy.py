# The web role of tests/playbooks (with its base dependency) written as a pyinfra deploy, for
# `wisp-bench --playbook-vs N`: the same folders, templates (rendered by pyinfra's Jinja2 from
# the role's own files), files and handler-like commands.
from pyinfra import host
from pyinfra.facts.hardware import Memory
from pyinfra.facts.server import Arch, LinuxDistribution
from pyinfra.operations import files, server

roles = host.data.roles
root = f"{host.data.out}/{host.name}"
conf = f"{root}/etc/web"
www = f"{root}/www"
sites = [
    {"name": "docs", "title": "Documentation", "aliases": ["doc", "manual"]},
    {"name": "blog", "title": "Blog"},
]
dist = host.get_fact(LinuxDistribution)
context = dict(
    inventory_hostname=host.name,
    ansible_distribution=dist["name"],
    ansible_distribution_major_version=dist["major"],
    ansible_distribution_release=dist["release_meta"].get("VERSION_CODENAME", ""),
    ansible_architecture=host.get_fact(Arch),
    ansible_os_family="Debian",
    ansible_memtotal_mb=host.get_fact(Memory) // 1024,
    base_family="debian",
    web_listen_port=8080,
    web_server_name=host.name,
    web_sites=sites,
    web_gzip=True,
    web_extra_headers=[],
    web_conf_dir=conf,
    web_root=www,
)

for d in ["etc", "log", "www"]:
    files.directory(name=f"Base folders ({d})", path=f"{root}/{d}", mode="755")
files.template(
    name="Message of the day", src=f"{roles}/base/templates/motd.j2",
    dest=f"{root}/etc/motd", mode="644", **context,
)
for d in [conf, f"{conf}/sites"]:
    files.directory(name=f"Configuration folders ({d})", path=d, mode="750")
for s in sites:
    files.directory(name=f"Site folders ({s['name']})", path=f"{www}/{s['name']}", mode="755")
main = files.template(
    name="Main configuration", src=f"{roles}/web/templates/web.conf.j2",
    dest=f"{conf}/web.conf", mode="640", **context,
)
changed_sites = []
for s in sites:
    changed_sites.append(files.template(
        name=f"Site configurations ({s['name']})", src=f"{roles}/web/templates/site.conf.j2",
        dest=f"{conf}/sites/{s['name']}.conf", mode="644", item=s, **context,
    ))
files.template(
    name="Index page", src=f"{roles}/web/templates/index.html.j2",
    dest=f"{www}/index.html", **context,
)
files.put(name="Robots file", src=f"{roles}/web/files/robots.txt", dest=f"{www}/robots.txt", mode="644")
files.put(name="Mime types", src=f"{roles}/web/files/mime.types", dest=f"{conf}/mime.types")
server.shell(
    name="First-run marker",
    commands=[f"test -e {www}/.installed || {{ echo installed > {www}/.installed && echo made; }}"],
)
server.shell(
    name="restart web", commands=[f"echo restart >> {root}/log/web.events"],
    _if=main.did_change,
)
server.shell(
    name="Log the configuration change", commands=[f"echo reload >> {root}/log/web.events"],
    _if=lambda: any(op.did_change() for op in changed_sites),
)
