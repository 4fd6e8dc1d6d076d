#!/usr/bin/env python3
"""Baseline "one row per statement": turns a sync-access plan into the SQL a
tool built on per-entity API calls would send, one INSERT or UPDATE per row,
inside one transaction. Usage: per_row.py PLAN BACKEND > statements.sql"""
import json
import sys


def quote(text):
    return "'" + text.replace("'", "''") + "'"


def main():
    plan_path, backend = sys.argv[1], sys.argv[2]
    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    tenant = plan["tenant"]
    ident = (lambda n: "`%s`" % n) if backend == "mysql" else (lambda n: '"%s"' % n)
    out = sys.stdout
    out.write("START TRANSACTION;\n" if backend == "mysql" else "BEGIN;\n")
    tables = {"create_tenant": "tenants", "add_role": "roles", "add_group": "groups", "add_binding": "bindings"}
    for change in plan["changes"]:
        op = change["op"]
        if op in tables:
            doc = json.dumps(change["value"], ensure_ascii=False, separators=(",", ":"))
            out.write("INSERT INTO %s (%s, %s) VALUES (%s, %s);\n"
                      % (ident(tables[op]), ident("key"), ident("value"), quote(change["key"]), quote(doc)))
            continue
        entry = json.dumps({"tenantId": tenant, "groupId": change["group_id"], "membership": change["membership"]},
                           separators=(",", ":"))
        key = quote(change["key"])
        if backend == "postgres":
            out.write("UPDATE users SET value = jsonb_set(value, '{groupList}', "
                      "coalesce(value -> 'groupList', '[]'::jsonb) || %s::jsonb) WHERE key = %s;\n"
                      % (quote("[" + entry + "]"), key))
        elif backend == "mysql":
            out.write("UPDATE users SET value = JSON_SET(value, '$.groupList', JSON_ARRAY_APPEND("
                      "COALESCE(JSON_EXTRACT(value, '$.groupList'), JSON_ARRAY()), '$', JSON_EXTRACT(%s, '$'))) "
                      "WHERE `key` = %s;\n" % (quote(entry), key))
        else:
            out.write("UPDATE users SET value = json_set(value, '$.groupList', json_insert("
                      "coalesce(json_extract(value, '$.groupList'), '[]'), '$[#]', json(%s))) WHERE key = %s;\n"
                      % (quote(entry), key))
    out.write("COMMIT;\n")


if __name__ == "__main__":
    main()
