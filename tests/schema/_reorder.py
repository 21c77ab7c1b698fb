"""Put an instance's keys in the order the grammar expects: declared properties in schema order
(own ``properties``, then ``$ref`` target, ``allOf``, the first matching ``anyOf``/``oneOf``
branch), then the other keys. JSON objects are unordered, so this changes no value."""

from __future__ import annotations

from ._util import oracle_valid


def _resolve(root, ref: str):
    node = root
    if not ref.startswith("#/"):
        return {}
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _views(schema, root, inst, depth=0):
    if not isinstance(schema, dict) or depth > 20:
        return []
    out = [schema]
    if isinstance(schema.get("$ref"), str):
        out += _views(_resolve(root, schema["$ref"]), root, inst, depth + 1)
    for sub in schema.get("allOf", []):
        out += _views(sub, root, inst, depth + 1)
    for kw in ("anyOf", "oneOf"):
        for sub in schema.get(kw, []):
            if oracle_valid({**root, **sub} if isinstance(sub, dict) and isinstance(root, dict) else sub, inst):
                out += _views(sub, root, inst, depth + 1)
                break
    return out


def reorder(inst, schema, root=None):
    root = schema if root is None else root
    views = _views(schema, root, inst)
    if isinstance(inst, dict):
        names = []
        for v in views:
            for k in v.get("properties", {}) if isinstance(v.get("properties"), dict) else {}:
                if k not in names:
                    names.append(k)
        for v in views:
            for k in v.get("required", []) if isinstance(v.get("required"), list) else []:
                if k not in names:
                    names.append(k)
        for v in views:
            deps = v.get("dependentRequired") if isinstance(v.get("dependentRequired"), dict) else {}
            for key, needed in deps.items():
                for k in [key, *sorted(needed)]:
                    if k not in names:
                        names.append(k)
        keys = [k for k in names if k in inst] + [k for k in inst if k not in names]
        out = {}
        for k in keys:
            sub = None
            for v in views:
                props = v.get("properties") if isinstance(v.get("properties"), dict) else {}
                if k in props:
                    sub = props[k]
                    break
            if sub is None:
                for v in views:
                    if isinstance(v.get("additionalProperties"), dict):
                        sub = v["additionalProperties"]
                        break
            out[k] = reorder(inst[k], sub, root) if sub is not None else inst[k]
        return out
    if isinstance(inst, list):
        out = []
        for i, x in enumerate(inst):
            sub = None
            for v in views:
                pi = v.get("prefixItems")
                if isinstance(pi, list) and i < len(pi):
                    sub = pi[i]
                    break
                if isinstance(v.get("items"), dict):
                    sub = v["items"]
                    break
            out.append(reorder(x, sub, root) if sub is not None else x)
        return out
    return inst
