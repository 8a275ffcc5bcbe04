/*-------------------------------------------------------------------------
 *
 * hr_watch_opts.h
 *		heroku-pg-resolve watch: its options and the secrets it reads at
 *		start and on SIGHUP (hr_watch_opts.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef HR_WATCH_OPTS_H
#define HR_WATCH_OPTS_H

#include "hr_watch_base.h"

/* configure returns -1 to go on, else the exit status */
extern int	hr_watch_configure(hr_watch *w, int argc, char **argv);
extern int	hr_watch_load_secrets(hr_watch *w, int at_start);
extern long hr_watch_parse_duration_ms(const char *text);
extern void hr_watch_free_config(hr_watch *w);
/* hr_watch_usage.c: --help */
extern void hr_watch_usage(void);

#endif							/* HR_WATCH_OPTS_H */
