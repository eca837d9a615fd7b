# workqueue: PostgreSQL extension (PGXS build)
EXTENSION    = workqueue
EXTVERSION = 0.5

MODULE_big   = workqueue
OBJS         = $(patsubst %.c,%.o,$(wildcard src/*/*.c))
DATA         = $(wildcard sql/workqueue--*.sql)
PGFILEDESC   = "workqueue - work queues, workflows, sync and SLA inside PostgreSQL"

# pg_regress: sql/<name>.sql -> expected/<name>.out, in this order
REGRESS      = queue workflow upgrade
REGRESS_OPTS = --load-extension=workqueue

# -Wextra minus unused-parameter, which PostgreSQL's own inline headers trip
PG_CPPFLAGS  = -I$(srcdir)/src -Wall -Wextra -Wno-unused-parameter -DWORKQUEUE_VERSION='"$(EXTVERSION)"'
SHLIB_LINK   = -lcurl

PG_CONFIG   ?= pg_config
PGXS        := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS does not track header dependencies: rebuild everything when one changes
$(OBJS): $(wildcard src/*/*.h)
