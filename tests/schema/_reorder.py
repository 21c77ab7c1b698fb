"""Put an instance's keys in the order the grammar expects: declared properties in schema order
(the ``$ref`` target's, then the new members of ``allOf`` / the first matching ``anyOf`` branch,
then the schema's own ``properties``, then ``allOf``/``anyOf`` members refining its own, then the
first matching ``oneOf`` branch's), then the other keys. JSON objects are unordered, so this
changes no value."""

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


def _props(view) -> dict:
    return view.get("properties") if isinstance(view.get("properties"), dict) else {}


def _views(schema, root, inst, depth=0, variant=False):
    """The subschemas whose keywords apply to ``inst`` here, in the order their properties come, as
    ``(subschema, variant)``: variant when a ``oneOf`` or ``if``/``then``/``else`` brought it in."""
    if not isinstance(schema, dict) or depth > 20:
        return []
    ref = _views(_resolve(root, schema["$ref"]), root, inst, depth + 1, variant) if isinstance(schema.get("$ref"), str) else []
    composed, variants = [], []
    for sub in schema.get("allOf", []):
        composed += _views(sub, root, inst, depth + 1, variant)
    for kw, out in (("anyOf", composed), ("oneOf", variants)):
        for sub in schema.get(kw, []):
            if oracle_valid({**root, **sub} if isinstance(sub, dict) and isinstance(root, dict) else sub, inst):
                out += _views(sub, root, inst, depth + 1, variant or kw == "oneOf")
                break
    if "if" in schema:
        cond = schema["if"]
        branch = schema.get("then") if oracle_valid({**root, **cond} if isinstance(cond, dict) else cond, inst) else schema.get("else")
        variants += _views(branch, root, inst, depth + 1, True)
    own = _props(schema)
    # allOf/anyOf members that only add members (a base type) come before the schema's own
    lead = [(v, var) for v, var in composed if own and not var and _props(v) and own.keys().isdisjoint(_props(v))]
    rest = [(v, var) for v, var in composed if not any(v is w for w, _ in lead)]
    return ref + lead + [(schema, variant)] + rest + variants


def declared_here(inst, schema) -> set[str]:
    """The property names the subschemas that apply to ``inst`` (an object) declare."""
    return {k for v, _variant in _views(schema, schema, inst) for k in _props(v)}


def reorder(inst, schema, root=None):
    root = schema if root is None else root
    views = [v for v, _variant in _views(schema, root, inst)]
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
