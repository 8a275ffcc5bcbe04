/*-------------------------------------------------------------------------
 *
 * hr_exec.c
 *		--exec: replace the command's process with the user's command, and
 *		say why when that fails the way a shell would.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hr_exec.h"

/*
 * Is there a file called name in a directory of PATH?  execvp() says EACCES
 * when a directory of PATH cannot be searched even if the command is in
 * none of them; a shell says "not found" then, and so do we.
 */
static int
on_path(const char *name)
{
	const char *path = getenv("PATH");
	const char *p;

	if (path == NULL)
		path = "/bin:/usr/bin";
	for (p = path;; p++)
	{
		const char *end = strchr(p, ':');
		size_t		n = end ? (size_t) (end - p) : strlen(p);
		char		full[4096];
		struct stat sb;

		if (n == 0)				/* an empty entry is the current directory */
			snprintf(full, sizeof(full), "./%s", name);
		else
			snprintf(full, sizeof(full), "%.*s/%s", (int) n, p, name);
		if (stat(full, &sb) == 0 && !S_ISDIR(sb.st_mode))
			return 1;
		if (end == NULL)
			return 0;
		p = end;
	}
}

int
hr_exec(char **cmd)
{
	int			e;

	fflush(stdout);
	fflush(stderr);
	execvp(cmd[0], cmd);
	e = errno;
	if (e == EACCES && strchr(cmd[0], '/') == NULL && !on_path(cmd[0]))
		e = ENOENT;
	return e;
}
