/*
 * Replays saved inputs through a fuzz harness without libFuzzer, so that the
 * seed corpus and every input that once crashed run in each ordinary build.
 * Each argument is a file or a directory; a directory contributes its regular
 * files in name order, except README files. A directory that does not exist
 * is skipped, because git keeps no empty folder.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads a whole file into a malloc'd buffer of exactly its size, so that
 * AddressSanitizer catches a harness that reads one byte too far. */
static int read_file(const char *path, uint8_t **data, size_t *size)
{
	FILE *file = NULL;
	struct stat st;
	uint8_t *buf = NULL;

	*data = NULL;
	*size = 0;
	file = fopen(path, "rb");
	if (file == NULL || fstat(fileno(file), &st) != 0) {
		if (file != NULL)
			(void)fclose(file);
		return -1;
	}
	buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (buf == NULL ||
	    fread(buf, 1, (size_t)st.st_size, file) != (size_t)st.st_size) {
		free(buf);
		(void)fclose(file);
		return -1;
	}
	(void)fclose(file); /* opened for reading: nothing to flush */
	*data = buf;
	*size = (size_t)st.st_size;
	return 0;
}

static int replay_file(const char *path)
{
	uint8_t *data = NULL;
	size_t size = 0;

	if (read_file(path, &data, &size) != 0) {
		fprintf(stderr, "replay: cannot read %s: %s\n", path,
		        strerror(errno));
		return -1;
	}
	LLVMFuzzerTestOneInput(data, size);
	free(data);
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* Replays the regular files of dir; returns how many ran, or -1. */
static long replay_dir(const char *dir)
{
	struct dirent **entries = NULL;
	long count = 0;
	int n;

	n = scandir(dir, &entries, NULL, by_name);
	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		const char *name = entries[i]->d_name;

		if (name[0] == '.' || strncmp(name, "README", 6) == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (replay_file(path) != 0) {
			count = -1;
			break;
		}
		count++;
	}
	for (int i = 0; i < n; i++)
		free(entries[i]);
	free(entries);
	return count;
}

int main(int argc, char **argv)
{
	long total = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		long count;

		if (stat(argv[i], &st) != 0) {
			printf("replay: %s does not exist, skipped\n", argv[i]);
			continue;
		}
		if (S_ISDIR(st.st_mode))
			count = replay_dir(argv[i]);
		else
			count = replay_file(argv[i]) == 0 ? 1 : -1;
		if (count < 0)
			return 1;
		printf("replay: %s: %ld inputs\n", argv[i], count);
		total += count;
	}
	printf("replay: %ld inputs, no crash\n", total);
	return 0;
}
