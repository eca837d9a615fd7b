-- Everything the extension defines, one line an object, in a stable order:
-- test/scripts/upgrade.sh prints it for a fresh install and for 0.5 +
-- ALTER EXTENSION UPDATE and requires the two to be the same.
WITH ext AS (SELECT oid, extconfig, extcondition FROM pg_extension WHERE extname = 'workqueue'),
     ns AS (SELECT 'workqueue'::regnamespace AS oid),
     acl AS (   -- an ACL as sorted "grantee:privilege" items, owner's own rights left out
        SELECT a.objacl::text AS objacl, string_agg(y.item, ',' ORDER BY y.item COLLATE "C") AS txt
          FROM (SELECT DISTINCT relacl AS objacl FROM pg_class WHERE relnamespace = (SELECT oid FROM ns)
                UNION SELECT DISTINCT proacl FROM pg_proc WHERE pronamespace = (SELECT oid FROM ns)
                UNION SELECT nspacl FROM pg_namespace WHERE oid = (SELECT oid FROM ns)) a,
               LATERAL aclexplode(a.objacl) x
               LEFT JOIN pg_roles g ON g.oid = x.grantee,
               LATERAL (SELECT coalesce(g.rolname, 'PUBLIC') || ':' || x.privilege_type
                               || CASE WHEN x.is_grantable THEN '*' ELSE '' END AS item) y
         WHERE x.grantee <> x.grantor OR x.grantee = 0
         GROUP BY a.objacl::text)
SELECT line FROM (
    -- extension members
    SELECT 'member ' || pg_describe_object(classid, objid, 0) AS line
      FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e' AND refobjid = (SELECT oid FROM ext)
    UNION ALL
    -- functions: signature, result, attributes, settings, privileges, body
    SELECT format('function %s(%s) returns %s lang=%s %s%s%s parallel=%s secdef=%s leakproof=%s cost=%s rows=%s config=%s acl=[%s] owner=%s src=%s bin=%s',
                  p.proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), l.lanname,
                  p.provolatile, CASE WHEN p.proisstrict THEN ' strict' ELSE '' END, CASE WHEN p.proretset THEN ' setof' ELSE '' END,
                  p.proparallel, p.prosecdef, p.proleakproof, p.procost, p.prorows, p.proconfig,
                  (SELECT txt FROM acl WHERE acl.objacl = p.proacl::text), pg_get_userbyid(p.proowner) = current_user,
                  md5(p.prosrc), p.probin)
      FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.pronamespace = (SELECT oid FROM ns)
    UNION ALL
    -- tables, views, sequences, indexes: kind, options, row security, privileges
    SELECT format('relation %s kind=%s options=%s rls=%s/%s persistence=%s acl=[%s] comment=%s',
                  c.relname, c.relkind, c.reloptions, c.relrowsecurity, c.relforcerowsecurity, c.relpersistence,
                  (SELECT txt FROM acl WHERE acl.objacl = c.relacl::text), obj_description(c.oid, 'pg_class'))
      FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns)
    UNION ALL
    -- columns, in their order
    SELECT format('column %s.%s #%s %s notnull=%s default=%s identity=%s generated=%s collation=%s',
                  c.relname, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, a.attcollation)
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE c.relnamespace = (SELECT oid FROM ns) AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT format('constraint %s.%s %s', c.relname, k.conname, pg_get_constraintdef(k.oid))
      FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid WHERE c.relnamespace = (SELECT oid FROM ns)
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid)
      FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = (SELECT oid FROM ns)
    UNION ALL
    SELECT format('view %s %s', c.relname, pg_get_viewdef(c.oid))
      FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('v', 'm')
    UNION ALL
    SELECT format('sequence %s %s %s %s %s %s', c.relname, s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmax, s.seqcycle)
      FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid WHERE c.relnamespace = (SELECT oid FROM ns)
    UNION ALL
    SELECT format('policy %s.%s cmd=%s permissive=%s roles=%s using=%s check=%s', c.relname, p.polname, p.polcmd, p.polpermissive,
                  (SELECT string_agg(CASE r WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r) END, ',' ORDER BY 1) FROM unnest(p.polroles) r),
                  pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
      FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace = (SELECT oid FROM ns)
    UNION ALL
    SELECT format('trigger %s.%s %s', c.relname, t.tgname, pg_get_triggerdef(t.oid))
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = (SELECT oid FROM ns) AND NOT t.tgisinternal
    UNION ALL
    SELECT format('type %s kind=%s', t.typname, t.typtype)
      FROM pg_type t WHERE t.typnamespace = (SELECT oid FROM ns)
    UNION ALL
    -- tables whose rows pg_dump keeps, with the filter
    SELECT format('config_dump %s %s', x.rel::regclass, x.cond)
      FROM ext, unnest(ext.extconfig, ext.extcondition) AS x(rel, cond)
    UNION ALL
    SELECT format('schema acl=[%s] comment=%s', (SELECT txt FROM acl WHERE acl.objacl = n.nspacl::text), obj_description(n.oid, 'pg_namespace'))
      FROM pg_namespace n WHERE n.oid = (SELECT oid FROM ns)
    UNION ALL
    -- the built-in rows: the review workflow and the 24x7 calendar
    SELECT format('row workflow_version %s %s %s %s', workflow, version, definition, builtin) FROM workqueue.workflow_version
    UNION ALL
    SELECT format('row workflow_step %s', (s.*)::text) FROM workqueue.workflow_step s
    UNION ALL
    SELECT format('row workflow %s %s', name, current_version) FROM workqueue.workflow
    UNION ALL
    SELECT format('row calendar %s %s %s %s %s %s', name, version, timezone, hours, holidays, builtin) FROM workqueue.calendar
) x ORDER BY line COLLATE "C";
