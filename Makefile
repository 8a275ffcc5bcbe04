# heroku_resolver: PGXS build.
#
#   make && make install          build and install (PG_CONFIG=... to choose)
#   make installcheck             pg_regress suite against a running server
#                                 (the full suite is test/run-tests.sh)
#
# Warnings-as-errors belongs to CI (PG_CFLAGS=-Werror), not here.

EXTENSION = heroku_resolver
EXTVERSION := $(shell sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" $(EXTENSION).control)

MODULE_big = heroku_resolver
# resolver core (no server headers) + server-side glue
CORE_OBJS = src/hr_util.o src/hr_token.o src/hr_url.o src/hr_json.o src/hr_http.o
OBJS = heroku_resolver.o src/pg_resolve.o $(CORE_OBJS)

DATA = $(wildcard $(EXTENSION)--*.sql)

# a test is a file: sql/NAME.sql with expected/NAME.out
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=.

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)

PG_CPPFLAGS = -I. -Isrc -I$(shell $(PG_CONFIG) --includedir) -DHR_VERSION=\"$(EXTVERSION)\"
SHLIB_LINK = -lcurl -ljson-c -L$(shell $(PG_CONFIG) --libdir) -lpq

include $(PGXS)
