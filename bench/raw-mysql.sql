-- The hand-written baseline on MySQL/MariaDB: set-based copies of the legacy
-- scope into tenant `default`, joining through the primary keys, in one
-- transaction.
START TRANSACTION;
INSERT INTO roles (`key`, `value`)
SELECT CONCAT('default_', r.id), JSON_SET(r.value, '$.tenantId', 'default')
FROM roles r LEFT JOIN roles t ON t.`key` = CONCAT('default_', r.id)
WHERE r.tenant_id IS NULL AND NOT r.deleted AND t.`key` IS NULL;
INSERT INTO `groups` (`key`, `value`)
SELECT CONCAT('default_', g.id), JSON_SET(g.value, '$.tenantId', 'default')
FROM `groups` g LEFT JOIN `groups` t ON t.`key` = CONCAT('default_', g.id)
WHERE g.tenant_id IS NULL AND NOT g.deleted AND t.`key` IS NULL;
INSERT INTO bindings (`key`, `value`)
SELECT CONCAT('default_', b.id), JSON_SET(b.value, '$.tenantId', 'default')
FROM bindings b
JOIN roles r ON r.`key` = b.role_id AND r.tenant_id IS NULL AND NOT r.deleted
LEFT JOIN users u ON b.type = 'USER' AND u.`key` = b.external_id AND NOT u.deleted
LEFT JOIN `groups` g ON b.type = 'GROUP' AND g.`key` = b.external_id AND g.tenant_id IS NULL AND NOT g.deleted
LEFT JOIN bindings t ON t.`key` = CONCAT('default_', b.id)
WHERE b.tenant_id IS NULL AND NOT b.deleted AND (u.`key` IS NOT NULL OR g.`key` IS NOT NULL) AND t.`key` IS NULL;
UPDATE users u
JOIN (
  SELECT u2.`key` AS k,
         JSON_ARRAYAGG(JSON_OBJECT('tenantId', 'default', 'groupId', j.gid, 'membership', 'MEMBER')) AS entries
  FROM users u2
  JOIN JSON_TABLE(u2.value, '$.groups[*]' COLUMNS (gid VARCHAR(100) PATH '$')) j
  JOIN `groups` g ON g.`key` = j.gid AND g.tenant_id IS NULL AND NOT g.deleted
  WHERE NOT u2.deleted
  GROUP BY u2.`key`
) m ON u.`key` = m.k
SET u.value = JSON_SET(u.value, '$.groupList',
  JSON_MERGE_PRESERVE(COALESCE(JSON_EXTRACT(u.value, '$.groupList'), JSON_ARRAY()), m.entries));
COMMIT;
