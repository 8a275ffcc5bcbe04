/*
 * rawget: the floor for benchmark B3 -- N GETs of one Heroku API mock path
 * with one reused libcurl handle (keep-alive), the headers the resolver
 * sends, and the mean latency in milliseconds on stdout.
 *
 *	rawget URL TOKEN_FILE N
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

static size_t
discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
	(void) ptr;
	(void) arg;
	return size * nmemb;
}

int
main(int argc, char **argv)
{
	char		token[512];
	char		auth[600];
	FILE	   *f;
	CURL	   *h;
	struct curl_slist *headers = NULL;
	struct timespec t0,
				t1;
	long		n,
				i;

	if (argc != 4 || (n = atol(argv[3])) <= 0)
	{
		fprintf(stderr, "usage: rawget URL TOKEN_FILE N\n");
		return 2;
	}
	f = fopen(argv[2], "r");
	if (f == NULL || fgets(token, sizeof(token), f) == NULL)
	{
		fprintf(stderr, "rawget: cannot read the token file\n");
		return 1;
	}
	fclose(f);
	token[strcspn(token, "\r\n")] = '\0';
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	memset(token, 0, sizeof(token));

	curl_global_init(CURL_GLOBAL_DEFAULT);
	h = curl_easy_init();
	headers = curl_slist_append(headers, "Accept: application/vnd.heroku+json; version=3");
	headers = curl_slist_append(headers, auth);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++)
	{
		long		status = 0;

		curl_easy_setopt(h, CURLOPT_URL, argv[1]);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(h, CURLOPT_USERAGENT, "heroku_resolver-bench/1.0");
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
		if (curl_easy_perform(h) != CURLE_OK ||
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
			status != 200)
		{
			fprintf(stderr, "rawget: request %ld failed (HTTP %ld)\n", i, status);
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.3f\n", ((t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6) / n);
	curl_slist_free_all(headers);
	curl_easy_cleanup(h);
	curl_global_cleanup();
	return 0;
}
