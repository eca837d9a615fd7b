# workqueue: PostgreSQL extension (PGXS build)
EXTENSION    = workqueue
EXTVERSION   = 0.6

MODULE_big   = workqueue
OBJS         = $(patsubst %.c,%.o,$(wildcard src/*/*.c))
PGFILEDESC   = "workqueue - work queues, workflows, sync and SLA inside PostgreSQL"

# The install script is built from the capability files, in this order
# (doc/architecture.md, "The install script"):
#
#   SQL_TABLES  tables, indexes, built-in rows: run once, at CREATE EXTENSION
#   SQL_DEFS    functions, views, policies, function privileges: written so
#               that they can run again, and run again by every upgrade
#
# An upgrade script is the hand-written step sql/upgrade/A--B.sql (tables that
# change, objects that go) followed by SQL_DEFS, so that every function of a
# database that upgraded is the one in src/.
SQL_TABLES   = src/core/tables.sql src/workflow/tables.sql src/queue/tables.sql \
               src/sla/tables.sql src/sync/tables.sql src/fetch/tables.sql \
               src/scale/tables.sql
SQL_DEFS     = src/scale/cluster.sql src/core/privileges.sql src/core/scopes.sql src/scale/mode.sql \
               src/workflow/workflow.sql src/workflow/assignment.sql \
               src/queue/queue.sql \
               src/sla/calendar.sql src/sla/sla.sql \
               src/sync/sync.sql src/fetch/fetch.sql src/worker/worker.sql \
               src/scale/scale.sql \
               src/core/grants.sql
UPGRADES     = $(patsubst sql/upgrade/%.sql,sql/$(EXTENSION)--%.sql,$(wildcard sql/upgrade/*--$(EXTVERSION).sql))
DATA_built   = sql/$(EXTENSION)--$(EXTVERSION).sql $(UPGRADES)

# pg_regress: test/regress/sql/<name>.sql -> test/regress/expected/<name>.out
REGRESS      = queue workflow upgrade
REGRESS_OPTS = --inputdir=test/regress --outputdir=test/regress --load-extension=workqueue

# -Wextra minus unused-parameter, which PostgreSQL's own inline headers trip
PG_CPPFLAGS  = -I$(srcdir)/src -Wall -Wextra -Wno-unused-parameter -DWORKQUEUE_VERSION='"$(EXTVERSION)"'
SHLIB_LINK   = -lcurl
EXTRA_CLEAN  = test/regress/results test/regress/regression.diffs test/regress/regression.out

PG_CONFIG   ?= pg_config
PGXS        := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: $(SQL_TABLES) $(SQL_DEFS) Makefile
	( printf '%s\n' '-- workqueue $(EXTVERSION): built by make from src/*/*.sql; edit those, not this file.' \
	    '\echo Use "CREATE EXTENSION workqueue" to load this file. \quit'; \
	  for f in $(SQL_TABLES) $(SQL_DEFS); do printf '\n-- ==== %s ====\n\n' "$$f"; cat "$$f"; done ) > $@

sql/$(EXTENSION)--%--$(EXTVERSION).sql: sql/upgrade/%--$(EXTVERSION).sql $(SQL_DEFS) Makefile
	( printf '%s\n' '-- workqueue $* -> $(EXTVERSION): built by make from sql/upgrade/$*--$(EXTVERSION).sql and src/*/*.sql.' \
	    '\echo Use "ALTER EXTENSION workqueue UPDATE TO '"'"'$(EXTVERSION)'"'"'" to load this file. \quit'; \
	  for f in $< $(SQL_DEFS); do printf '\n-- ==== %s ====\n\n' "$$f"; cat "$$f"; done ) > $@

# PGXS does not track header dependencies: rebuild everything when one changes
$(OBJS): $(wildcard src/*/*.h)
