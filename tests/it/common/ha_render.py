#!/usr/bin/env python3
"""Render Home Assistant MQTT templates the way Home Assistant does: Jinja2's immutable
sandbox, the MQTT payload as `value` and its JSON as `value_json`. Strict about undefined
names (a template that touches a field the payload lacks fails here instead of logging a
warning in Home Assistant).

stdin: a JSON list of {"template": ..., "payload": ...}; stdout: a JSON list of the rendered
strings (or {"error": ...} for one that failed)."""
import json
import sys

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

env = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
out = []
for item in json.load(sys.stdin):
    payload = item["payload"]
    try:
        value_json = json.loads(payload)
    except ValueError:
        value_json = None
    try:
        out.append(env.from_string(item["template"]).render(value=payload, value_json=value_json))
    except Exception as e:  # the template's failure is the answer
        out.append({"error": f"{type(e).__name__}: {e}"})
json.dump(out, sys.stdout)
