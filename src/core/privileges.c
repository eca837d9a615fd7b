/*
 * privileges.c
 *		Who may do what: administrators, and acting in someone else's name.
 *
 * A workqueue administrator is a superuser or a member of the role
 * workqueue_admin.  (The extension's owner is a superuser: only superusers
 * can create it.)  The caller is the session's outer role, so the checks
 * see through our SECURITY DEFINER functions.  Everything here uses the
 * system caches only: these checks run on every claim and transition.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "core/workqueue.h"

static bool
RoleIsAdmin(Oid roleid)
{
	Oid			admin;

	if (!OidIsValid(roleid))
		return false;
	if (superuser_arg(roleid))
		return true;
	admin = get_role_oid("workqueue_admin", true);
	return OidIsValid(admin) && has_privs_of_role(roleid, admin);
}

/* Is the named database role (or, if NULL, the caller) an administrator? */
bool
WorkqueueIsAdmin(const char *role)
{
	return RoleIsAdmin(role ? get_role_oid(role, true) : GetOuterUserId());
}

/*
 * Does the actor act with administrator rights?  Only if it names an
 * administrator and is either the caller itself or named by an
 * administrator: acting as someone else never gains rights.
 */
bool
WorkqueueActorIsAdmin(const char *actor)
{
	Oid			caller = GetOuterUserId();
	Oid			actor_oid = get_role_oid(actor, true);

	return RoleIsAdmin(actor_oid) && (actor_oid == caller || RoleIsAdmin(caller));
}

/*
 * Raises unless the actor argument is usable: not empty, not longer than a
 * name may be (limits.c), and naming someone other than the caller only if the caller is an administrator or a member
 * of workqueue_agent (an application acting for its users).
 */
/*
 * Would WorkqueueCheckActor pass?  (Without raising: a caller that does
 * other checks first, and must report their errors before this one, asks
 * here and raises only when one fails.)
 */
bool
WorkqueueActorAcceptable(const char *actor)
{
	Oid			caller = GetOuterUserId();
	Oid			agent;

	if (actor == NULL || actor[0] == '\0' || strlen(actor) > WQ_NAME_MAX_BYTES)
		return false;
	if (strcmp(actor, GetUserNameFromId(caller, false)) == 0 || RoleIsAdmin(caller))
		return true;
	agent = get_role_oid("workqueue_agent", true);
	return OidIsValid(agent) && has_privs_of_role(caller, agent);
}

void
WorkqueueCheckActor(const char *actor, const char *what)
{
	Oid			caller = GetOuterUserId();
	char	   *caller_name;
	Oid			agent;

	if (actor == NULL || actor[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be empty", what),
				 errhint("Pass the name of who is acting as \"%s\", or leave it out to use current_user.", what)));
	WorkqueueCheckName(what, actor, strlen(actor));
	caller_name = GetUserNameFromId(caller, false);
	if (strcmp(actor, caller_name) == 0 || RoleIsAdmin(caller))
		return;
	agent = get_role_oid("workqueue_agent", true);
	if (OidIsValid(agent) && has_privs_of_role(caller, agent))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("role \"%s\" cannot act as \"%s\"", caller_name, actor),
			 errdetail("The %s argument names someone other than the calling role.", what),
			 errhint("Leave %s out to act as yourself, or ask an administrator to run: GRANT workqueue_agent TO %s;",
					 what, quote_identifier(caller_name))));
}

PG_FUNCTION_INFO_V1(workqueue_is_admin);

/* SQL: workqueue.is_admin(who text DEFAULT NULL) */
Datum
workqueue_is_admin(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(WorkqueueIsAdmin(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0))));
}

PG_FUNCTION_INFO_V1(workqueue_actor_is_admin);

/* SQL: workqueue._actor_is_admin(actor text) */
Datum
workqueue_actor_is_admin(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(WorkqueueActorIsAdmin(text_to_cstring(PG_GETARG_TEXT_PP(0))));
}

PG_FUNCTION_INFO_V1(workqueue_check_actor);

/* SQL: workqueue._check_actor(actor text, what text) */
Datum
workqueue_check_actor(PG_FUNCTION_ARGS)
{
	WorkqueueCheckActor(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)),
						PG_ARGISNULL(1) ? "actor" : text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_VOID();
}
