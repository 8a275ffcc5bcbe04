/*-------------------------------------------------------------------------
 *
 * hr_exec.h
 *		Running the user's command for heroku-pg-resolve --exec.
 *
 *-------------------------------------------------------------------------
 */
#ifndef HR_EXEC_H
#define HR_EXEC_H

/*
 * execvp(cmd[0], cmd) with the output flushed first.  Returns only on
 * failure, with the errno to report: ENOENT also when a directory of PATH
 * could not be searched and the command is in none of them, as a shell says.
 */
extern int	hr_exec(char **cmd);

#endif							/* HR_EXEC_H */
