-- The hand-written baseline on SQLite: set-based copies of the legacy scope
-- into tenant `default`, joining through the primary keys, in one
-- transaction.
BEGIN;
INSERT INTO roles ("key", "value")
SELECT 'default_' || r.id, json_set(r.value, '$.tenantId', 'default')
FROM roles r
WHERE r.tenant_id IS NULL AND NOT r.deleted
  AND NOT EXISTS (SELECT 1 FROM roles t WHERE t.key = 'default_' || r.id);
INSERT INTO groups ("key", "value")
SELECT 'default_' || g.id, json_set(g.value, '$.tenantId', 'default')
FROM groups g
WHERE g.tenant_id IS NULL AND NOT g.deleted
  AND NOT EXISTS (SELECT 1 FROM groups t WHERE t.key = 'default_' || g.id);
INSERT INTO bindings ("key", "value")
SELECT 'default_' || b.id, json_set(b.value, '$.tenantId', 'default')
FROM bindings b
JOIN roles r ON r.key = b.role_id AND r.tenant_id IS NULL AND NOT r.deleted
LEFT JOIN users u ON b.type = 'USER' AND u.key = b.external_id AND NOT u.deleted
LEFT JOIN groups g ON b.type = 'GROUP' AND g.key = b.external_id AND g.tenant_id IS NULL AND NOT g.deleted
WHERE b.tenant_id IS NULL AND NOT b.deleted AND (u.key IS NOT NULL OR g.key IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM bindings t WHERE t.key = 'default_' || b.id);
UPDATE users
SET value = json_set(value, '$.groupList', (
  SELECT json_group_array(json(e.value)) FROM (
    SELECT value FROM json_each(coalesce(json_extract(users.value, '$.groupList'), '[]'))
    UNION ALL
    SELECT json_object('tenantId', 'default', 'groupId', gid.value, 'membership', 'MEMBER')
    FROM json_each(json_extract(users.value, '$.groups')) AS gid
    JOIN groups g ON g.key = gid.value AND g.tenant_id IS NULL AND NOT g.deleted
  ) AS e))
WHERE NOT deleted AND json_type(value, '$.groups') = 'array';
COMMIT;
