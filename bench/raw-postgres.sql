-- The hand-written baseline a DBA would run on PostgreSQL: copy the legacy
-- scope into tenant `default` with set-based SQL joining through the primary
-- keys, in one transaction.
BEGIN;
INSERT INTO roles ("key", "value")
SELECT 'default_' || r.id, jsonb_set(r.value, '{tenantId}', '"default"')
FROM roles r
WHERE r.tenant_id IS NULL AND NOT r.deleted
  AND NOT EXISTS (SELECT 1 FROM roles t WHERE t.key = 'default_' || r.id);
INSERT INTO groups ("key", "value")
SELECT 'default_' || g.id, jsonb_set(g.value, '{tenantId}', '"default"')
FROM groups g
WHERE g.tenant_id IS NULL AND NOT g.deleted
  AND NOT EXISTS (SELECT 1 FROM groups t WHERE t.key = 'default_' || g.id);
INSERT INTO bindings ("key", "value")
SELECT 'default_' || b.id, jsonb_set(b.value, '{tenantId}', '"default"')
FROM bindings b
JOIN roles r ON r.key = b.role_id AND r.tenant_id IS NULL AND NOT r.deleted
LEFT JOIN users u ON b.type = 'USER' AND u.key = b.external_id AND NOT u.deleted
LEFT JOIN groups g ON b.type = 'GROUP' AND g.key = b.external_id AND g.tenant_id IS NULL AND NOT g.deleted
WHERE b.tenant_id IS NULL AND NOT b.deleted AND (u.key IS NOT NULL OR g.key IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM bindings t WHERE t.key = 'default_' || b.id);
UPDATE users u
SET value = jsonb_set(u.value, '{groupList}', coalesce(u.value -> 'groupList', '[]'::jsonb) || m.entries)
FROM (
  SELECT u2.key, jsonb_agg(jsonb_build_object('tenantId', 'default', 'groupId', gid, 'membership', 'MEMBER')) AS entries
  FROM users u2
  CROSS JOIN LATERAL jsonb_array_elements_text(u2.value -> 'groups') AS gid
  JOIN groups g ON g.key = gid AND g.tenant_id IS NULL AND NOT g.deleted
  WHERE NOT u2.deleted
  GROUP BY u2.key
) m
WHERE u.key = m.key;
COMMIT;
