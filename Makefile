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
# (every src/hr_*.c is core: the client library and the fuzzers build them too)
CORE_OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/hr_*.c)))
OBJS = heroku_resolver.o $(CORE_OBJS) $(patsubst %.c,%.o,$(sort $(wildcard src/pg_*.c)))

DATA = $(wildcard $(EXTENSION)--*.sql)

# a test is a file: sql/NAME.sql with expected/NAME.out
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=.

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)

PG_CPPFLAGS = -I. -Isrc -I$(shell $(PG_CONFIG) --includedir) -DHR_VERSION=\"$(EXTVERSION)\"
SHLIB_LINK = -lcurl -ljson-c -lcrypto -L$(shell $(PG_CONFIG) --libdir) -lpq

include $(PGXS)

# PGXS tracks no header dependencies: a changed header rebuilds what includes it
$(OBJS): heroku_resolver.h $(wildcard src/*.h)

# --- client library and command ---
# libheroku_resolver (the resolver core built once more for client programs,
# from the same src/hr_*.c files, without the server include path, plus
# client/hr_client.c) and the heroku-pg-resolve command.  See doc/client.md.
HR_SO_MAJOR = 1
HR_SO_MINOR = 1
HR_LIB = libheroku_resolver
HR_LIB_SONAME = $(HR_LIB).so.$(HR_SO_MAJOR)
HR_LIB_REAL = $(HR_LIB).so.$(HR_SO_MAJOR).$(HR_SO_MINOR)
HR_CMD = heroku-pg-resolve

# no $(CPPFLAGS): it names the server's include directories
# no $(CFLAGS_SL_MODULE): from PostgreSQL 16 PGXS adds -fvisibility=hidden to CFLAGS for the
# server module, which would leave the client library exporting nothing
HR_CLIENT_CFLAGS = $(filter-out $(CFLAGS_SL_MODULE),$(CFLAGS))
HR_CLIENT_CPPFLAGS = -I. -Isrc -Iclient -I$(includedir) -D_GNU_SOURCE -DHR_VERSION=\"$(EXTVERSION)\"
HR_CLIENT_LIBS = -lcurl -ljson-c -L$(libdir) -lpq
HR_LIB_OBJS = $(patsubst src/%.o,client/lib_%.o,$(CORE_OBJS)) client/hr_client.o
HR_CMD_OBJS = client/heroku-pg-resolve.o client/hr_service.o client/hr_service_file.o \
	client/hr_exec.o $(patsubst %.c,%.o,$(sort $(wildcard client/hr_watch*.c)))
# heroku-pg-resolve watch: the webhook receiver (libmicrohttpd, OpenSSL's HMAC) and its
# threads are the command's alone, never the library's
HR_CMD_LIBS = -lmicrohttpd -lcrypto -lpthread
HR_CLIENT_BUILT = client/$(HR_LIB_REAL) client/$(HR_LIB_SONAME) client/$(HR_LIB).so \
	client/$(HR_CMD) client/heroku_resolver.pc client/example

all: client-all
client-all: $(HR_CLIENT_BUILT)

# HR_VERSION comes from the control file: a new version rebuilds
client/lib_%.o: src/%.c heroku_resolver.h src/hr_internal.h $(EXTENSION).control
	$(CC) $(HR_CLIENT_CFLAGS) $(HR_CLIENT_CPPFLAGS) -c -o $@ $<

client/%.o: client/%.c heroku_resolver.h $(wildcard client/*.h) $(EXTENSION).control
	$(CC) $(HR_CLIENT_CFLAGS) $(HR_CLIENT_CPPFLAGS) -c -o $@ $<

# export only what heroku_resolver.h declares
client/$(HR_LIB).map: heroku_resolver.h
	{ echo 'HEROKU_RESOLVER_$(HR_SO_MAJOR) {'; echo '  global:'; \
	  sed -n 's/^extern [^(]*[^a-z_]\(hr_[a-z0-9_]*\)(.*/    \1;/p' heroku_resolver.h | sort -u; \
	  echo '  local: *;'; echo '};'; } > $@

client/$(HR_LIB_REAL): $(HR_LIB_OBJS) client/$(HR_LIB).map
	$(CC) $(HR_CLIENT_CFLAGS) -shared -Wl,-soname,$(HR_LIB_SONAME) \
		-Wl,--version-script=client/$(HR_LIB).map -Wl,--no-undefined \
		$(LDFLAGS) -o $@ $(HR_LIB_OBJS) $(HR_CLIENT_LIBS)

client/$(HR_LIB_SONAME): client/$(HR_LIB_REAL)
	rm -f $@ && $(LN_S) $(HR_LIB_REAL) $@

client/$(HR_LIB).so: client/$(HR_LIB_SONAME)
	rm -f $@ && $(LN_S) $(HR_LIB_SONAME) $@

# the command carries its own copy of the objects: it runs from the build
# directory too, and does not depend on where the library is installed
client/$(HR_CMD): $(HR_CMD_OBJS) $(HR_LIB_OBJS)
	$(CC) $(HR_CLIENT_CFLAGS) $(LDFLAGS) -o $@ $(HR_CMD_OBJS) $(HR_LIB_OBJS) $(HR_CLIENT_LIBS) $(HR_CMD_LIBS)

# built against the library in client/ (run it with LD_LIBRARY_PATH=client), named by its
# path: with -L, an installed copy in a directory of $(LDFLAGS) would be taken instead;
# the tests build it again from the installed library with pkg-config
client/example: client/example.o client/$(HR_LIB).so
	$(CC) $(HR_CLIENT_CFLAGS) $(LDFLAGS) -o $@ client/example.o client/$(HR_LIB).so -L$(libdir) -lpq

client/heroku_resolver.pc: client/heroku_resolver.pc.in $(EXTENSION).control
	sed -e 's|@libdir@|$(libdir)|' -e 's|@includedir@|$(includedir)|' \
		-e 's|@version@|$(EXTVERSION)|' $< > $@

installdirs: installdirs-client
installdirs-client:
	$(MKDIR_P) '$(DESTDIR)$(libdir)/pkgconfig' '$(DESTDIR)$(includedir)' \
		'$(DESTDIR)$(bindir)' '$(DESTDIR)$(mandir)/man1'

install: install-client
install-client: client-all installdirs-client
	$(INSTALL_SHLIB) client/$(HR_LIB_REAL) '$(DESTDIR)$(libdir)/$(HR_LIB_REAL)'
	cd '$(DESTDIR)$(libdir)' && rm -f $(HR_LIB_SONAME) $(HR_LIB).so && \
		$(LN_S) $(HR_LIB_REAL) $(HR_LIB_SONAME) && $(LN_S) $(HR_LIB_SONAME) $(HR_LIB).so
	$(INSTALL_DATA) heroku_resolver.h '$(DESTDIR)$(includedir)/heroku_resolver.h'
	$(INSTALL_DATA) client/heroku_resolver.pc '$(DESTDIR)$(libdir)/pkgconfig/heroku_resolver.pc'
	$(INSTALL_PROGRAM) client/$(HR_CMD) '$(DESTDIR)$(bindir)/$(HR_CMD)'
	$(INSTALL_DATA) doc/$(HR_CMD).1 '$(DESTDIR)$(mandir)/man1/$(HR_CMD).1'

uninstall: uninstall-client
uninstall-client:
	rm -f '$(DESTDIR)$(libdir)/$(HR_LIB_REAL)' '$(DESTDIR)$(libdir)/$(HR_LIB_SONAME)' \
		'$(DESTDIR)$(libdir)/$(HR_LIB).so' '$(DESTDIR)$(includedir)/heroku_resolver.h' \
		'$(DESTDIR)$(libdir)/pkgconfig/heroku_resolver.pc' '$(DESTDIR)$(bindir)/$(HR_CMD)' \
		'$(DESTDIR)$(mandir)/man1/$(HR_CMD).1'

clean: clean-client
clean-client:
	rm -f client/*.o client/$(HR_LIB).map $(HR_CLIENT_BUILT)

.PHONY: client-all installdirs-client install-client uninstall-client clean-client
# --- end of client library and command ---

# --- dist ---
# The PGXN release: heroku_resolver-<META.json version>.zip, made by git archive from a commit
# (DIST_REF, default HEAD), so only committed files ship; .gitattributes export-ignore leaves
# out the tests and CI files a user does not need.  The version is read from META.json at that
# commit, so the name always matches the contents.  Only this target runs git.
DIST_REF ?= HEAD
DIST_VERSION = $(shell git show '$(DIST_REF):META.json' | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')

dist:
	@v='$(DIST_VERSION)'; test -n "$$v" || { echo "dist: no version in $(DIST_REF):META.json" >&2; exit 1; }; \
	if [ -n "$$(git status --porcelain --untracked-files=no)" ]; then \
		echo "dist: warning: uncommitted changes are not in the archive (it is made from $(DIST_REF))" >&2; fi; \
	git archive --format zip --prefix '$(EXTENSION)-'"$$v"/ -o '$(EXTENSION)-'"$$v".zip '$(DIST_REF)' && \
	echo "dist: $(EXTENSION)-$$v.zip"

.PHONY: dist
# --- end of dist ---
