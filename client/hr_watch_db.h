/*-------------------------------------------------------------------------
 *
 * hr_watch_db.h
 *		heroku-pg-resolve watch: the clusters to notify (hr_watch_db.c).
 *		Every call is made with hr_watch.mu held but start and stop.
 *
 *-------------------------------------------------------------------------
 */
#ifndef HR_WATCH_DB_H
#define HR_WATCH_DB_H

#include "hr_watch_base.h"

extern int	hr_watch_dbs_start(hr_watch *w);
extern void hr_watch_dbs_notify(hr_watch *w, int app, unsigned long gen);
extern int	hr_watch_dbs_state(hr_watch *w, int app, unsigned long gen);
extern void hr_watch_dbs_health(hr_watch *w, struct json_object *array);
extern void hr_watch_dbs_stop(hr_watch *w);
/* "host:port/dbname" of a conninfo, for messages; 0 if it does not parse */
extern int	hr_watch_db_label(const char *conninfo, char *dst, size_t dstlen);

#endif							/* HR_WATCH_DB_H */
