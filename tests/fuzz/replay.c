/* replay.c -- runs one libFuzzer harness over stored inputs, without libFuzzer.
 *
 * Linked with a tests/fuzz/fuzz_<name>.c harness (built by gcc with the rest
 * of the suite, so under ASan + UBSan in tests/run.sh) and run by ctest on the
 * committed seed corpus and crash regressions: every input a harness was ever
 * given on purpose is replayed on every run, with or without clang.
 * Usage: fuzz_replay_<name> DIR...  Each DIR is read (not recursively); a
 * missing or unreadable DIR, an unreadable file, or no input at all fails.
 * A harness reports a failed property by aborting, which fails the test.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads all of path into a new buffer (size in *len); NULL on failure. */
static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	struct stat st;

	if (f == NULL)
		return NULL;
	if (fstat(fileno(f), &st) != 0 || st.st_size < 0)
		goto out;
	/* +1: malloc(0) may return NULL, and an empty file is a valid input */
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL)
		goto out;
	*len = fread(buf, 1, (size_t)st.st_size, f);
	if (*len != (size_t)st.st_size || ferror(f)) {
		free(buf);
		buf = NULL;
	}
out:
	fclose(f);
	return buf;
}

/* Replays every regular file of dir; returns the count, or -1 on an error. */
static long replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	long n = 0;

	if (d == NULL) {
		fprintf(stderr, "replay: cannot open %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		char path[4096];
		struct stat st;
		uint8_t *data;
		size_t len = 0;

		if (e->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path) ||
		    stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		data = read_file(path, &len);
		if (data == NULL) {
			fprintf(stderr, "replay: cannot read %s\n", path);
			closedir(d);
			return -1;
		}
		LLVMFuzzerTestOneInput(data, len);
		free(data);
		n++;
	}
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	long total = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		long n = replay_dir(argv[i]);

		if (n < 0)
			return 1;
		printf("%s: %ld inputs replayed\n", argv[i], n);
		total += n;
	}
	if (total == 0) {
		fprintf(stderr, "replay: no input found\n");
		return 1;
	}
	return 0;
}
