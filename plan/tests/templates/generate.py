"""Writes each case's `expected`: what ansible-core's template action renders for
`template.j2` with `vars.yml` (its Templar call, with the template action's options).

Run in a venv with ansible-core:  python -m venv v && v/bin/pip install ansible-core &&
v/bin/python plan/tests/templates/generate.py   (`--check` compares instead of writing).
"""

import pathlib
import sys

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

here = pathlib.Path(__file__).parent
check = "--check" in sys.argv
differ = []
for case in sorted(p for p in here.iterdir() if p.is_dir()):
    variables = yaml.safe_load((case / "vars.yml").read_text()) or {}
    templar = Templar(loader=DataLoader(), variables=variables)
    source = (case / "template.j2").read_text()
    rendered = templar.template(
        trust_as_template(source),
        escape_backslashes=False,
        overrides=dict(trim_blocks=True, lstrip_blocks=False, newline_sequence="\n"),
    )
    expected = case / "expected"
    if check:
        if expected.read_text() != rendered:
            differ.append(case.name)
    else:
        expected.write_text(rendered)
if differ:
    sys.exit("ansible-core renders differently now: " + ", ".join(differ))
