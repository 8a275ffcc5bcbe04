/*-------------------------------------------------------------------------
 *
 * hr_token.c
 *		Where the Heroku API token comes from: given directly, a key file,
 *		HEROKU_API_KEY, or the netrc entry for the API host (what the Heroku
 *		CLI writes).  No server headers.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hr_internal.h"

/* netrc files are small; anything bigger is not one */
#define HR_MAX_NETRC_BYTES	(1024 * 1024)

/*
 * Next netrc token from *pos: whitespace-separated, or a double-quoted
 * string with backslash escapes (as curl reads them).  Returns a malloc'd
 * token, NULL at the end (or on ENOMEM, with *oom set).
 */
static char *
netrc_token(const char *text, size_t len, size_t *pos, int *oom)
{
	size_t		i = *pos;
	hr_buf		b;

	while (i < len && isspace((unsigned char) text[i]))
		i++;
	if (i >= len)
	{
		*pos = i;
		return NULL;
	}
	hr_buf_init(&b);
	hr_buf_append(&b, "", 0);
	if (text[i] == '"')
	{
		i++;
		while (i < len && text[i] != '"')
		{
			char		c = text[i++];

			if (c == '\\' && i < len)
			{
				c = text[i++];
				if (c == 'n')
					c = '\n';
				else if (c == 'r')
					c = '\r';
				else if (c == 't')
					c = '\t';
			}
			hr_buf_putc(&b, c);
		}
		if (i < len)
			i++;				/* closing quote */
	}
	else
	{
		while (i < len && !isspace((unsigned char) text[i]))
			hr_buf_putc(&b, text[i++]);
	}
	*pos = i;
	if (b.oom)
	{
		*oom = 1;
		return NULL;
	}
	return b.data;
}

/* Skip a macdef body: everything up to the next empty line. */
static void
netrc_skip_macdef(const char *text, size_t len, size_t *pos)
{
	size_t		i = *pos;

	/* rest of the macdef line */
	while (i < len && text[i] != '\n')
		i++;
	while (i < len)
	{
		/* i is at a '\n'; an immediately following '\n' ends the macro */
		i++;
		if (i >= len || text[i] == '\n')
			break;
		while (i < len && text[i] != '\n')
			i++;
	}
	*pos = i;
}

int
hr_netrc_lookup(const char *text, size_t len, const char *machine,
				char **login, char **password)
{
	size_t		pos = 0;
	int			in_match = 0;	/* inside the entry we want */
	int			found = 0;
	int			oom = 0;
	char	   *tok;

	*login = NULL;
	*password = NULL;
	while ((tok = netrc_token(text, len, &pos, &oom)) != NULL)
	{
		if (strcmp(tok, "machine") == 0 || strcmp(tok, "default") == 0)
		{
			int			is_default = (tok[0] == 'd');

			free(tok);
			if (found)
				break;			/* our entry is complete */
			if (is_default)
				in_match = 1;
			else
			{
				char	   *name = netrc_token(text, len, &pos, &oom);

				in_match = (name != NULL && machine != NULL &&
							strcmp(name, machine) == 0);
				free(name);
			}
			found = in_match;
			continue;
		}
		if (strcmp(tok, "macdef") == 0)
		{
			free(tok);
			netrc_skip_macdef(text, len, &pos);
			continue;
		}
		if (strcmp(tok, "login") == 0 || strcmp(tok, "password") == 0 ||
			strcmp(tok, "account") == 0)
		{
			int			kind = tok[0];
			char	   *val;

			free(tok);
			val = netrc_token(text, len, &pos, &oom);
			if (val == NULL)
				break;
			if (in_match && kind == 'l' && *login == NULL)
				*login = val;
			else if (in_match && kind == 'p' && *password == NULL)
				*password = val;
			else
				hr_free_secret(val);
			continue;
		}
		/* unknown token: ignore it, as curl and ftp do */
		hr_free_secret(tok);
	}
	if (oom || !found)
	{
		free(*login);
		hr_free_secret(*password);
		*login = NULL;
		*password = NULL;
		return 0;
	}
	return 1;
}

/*
 * A malloc'd copy of a token without the white space around it: pasted
 * from `heroku auth:token`, a shell's `export HEROKU_API_KEY="$(...)\n"`
 * or a netrc line, it may carry a newline or spaces that the API would
 * reject.  *token NULL (HR_OK) when nothing is left.
 */
static hr_code
trimmed_token(const char *text, char **token, hr_error *err)
{
	size_t		start = 0;
	size_t		end = strlen(text);

	*token = NULL;
	while (start < end && isspace((unsigned char) text[start]))
		start++;
	while (end > start && isspace((unsigned char) text[end - 1]))
		end--;
	if (end == start)
		return HR_OK;
	*token = malloc(end - start + 1);
	if (*token == NULL)
		return hr_error_oom(err);
	memcpy(*token, text + start, end - start);
	(*token)[end - start] = '\0';
	return HR_OK;
}

/* $HOME, else the home directory of the effective user. */
static const char *
home_dir(void)
{
	const char *home = getenv("HOME");
	struct passwd *pw;

	if (home && home[0])
		return home;
	pw = getpwuid(geteuid());
	return pw ? pw->pw_dir : NULL;
}

static hr_code
token_from_netrc(const hr_settings *s, char **token, hr_error *err)
{
	const char *api_url = (s->api_url && s->api_url[0]) ? s->api_url : HR_DEFAULT_API_URL;
	int			explicit_file = (s->netrc_file && s->netrc_file[0]);
	char		pathbuf[4096];
	const char *path;
	char	   *host;
	char	   *text;
	size_t		len;
	char	   *login;
	char	   *password;
	hr_code		rc;

	if (explicit_file)
		path = s->netrc_file;
	else
	{
		const char *home = home_dir();

		if (home == NULL)
			return HR_OK;
		snprintf(pathbuf, sizeof(pathbuf), "%s/.netrc", home);
		path = pathbuf;
		if (access(path, F_OK) != 0)
			return HR_OK;		/* no default netrc: not an error */
	}
	rc = hr_read_file(path, "netrc file", HR_MAX_NETRC_BYTES, &text, &len, err);
	if (rc != HR_OK)
		return rc;
	host = hr_url_host(api_url);
	if (host == NULL)
	{
		hr_free_secret(text);
		return HR_OK;
	}
	rc = HR_OK;
	if (hr_netrc_lookup(text, len, host, &login, &password))
	{
		free(login);
		if (password)
			rc = trimmed_token(password, token, err);
		hr_free_secret(password);
	}
	free(host);
	hr_free_secret(text);
	return rc;
}

hr_code
hr_find_token(const hr_settings *s, char **token, const char **source,
			  hr_error *err)
{
	const char *dummy;
	hr_code		rc;

	*token = NULL;
	if (source == NULL)
		source = &dummy;

	if (s->api_key && s->api_key[0])
	{
		rc = trimmed_token(s->api_key, token, err);
		if (rc != HR_OK || *token)
		{
			*source = "api key setting";
			return rc;
		}
	}
	if (s->api_key_file && s->api_key_file[0])
	{
		rc = hr_read_first_line(s->api_key_file, "API key file", token, err);
		if (rc != HR_OK)
			return rc;
		if ((*token)[0] == '\0')
		{
			free(*token);
			*token = NULL;
			hr_error_set(err, HR_ENOTOKEN, "API key file \"%s\" is empty",
						 s->api_key_file);
			hr_error_hint(err, "Put the Heroku API token on the first line of the file.");
			return HR_ENOTOKEN;
		}
		*source = "API key file";
		return HR_OK;
	}
	if (s->use_env)
	{
		const char *env = getenv("HEROKU_API_KEY");

		if (env && env[0])
		{
			rc = trimmed_token(env, token, err);
			if (rc != HR_OK || *token)
			{
				*source = "HEROKU_API_KEY";
				return rc;
			}
		}
	}
	rc = token_from_netrc(s, token, err);
	if (rc != HR_OK)
		return rc;
	if (*token)
	{
		*source = "netrc";
		return HR_OK;
	}
	{
		const char *api_url = (s->api_url && s->api_url[0]) ? s->api_url : HR_DEFAULT_API_URL;
		char	   *host = hr_url_host(api_url);
		char		hostp[128];

		hr_printable(hostp, sizeof(hostp), host ? host : "?", 100);
		free(host);
		hr_error_set(err, HR_ENOTOKEN, "no Heroku API token configured");
		hr_error_hint(err, "Give a token file, set HEROKU_API_KEY, or add a netrc entry for machine \"%s\".  "
					  "`heroku auth:token` prints the Heroku CLI's token; `heroku login` writes netrc only with HEROKU_NETRC_WRITE=true.",
					  hostp);
	}
	return HR_ENOTOKEN;
}
