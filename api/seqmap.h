/* seqmap.h -- the last seq a stream sent, per job: a small bounded hash map.
 *
 * Keys are job ids (text, at most SEQMAP_KEY_LEN - 1 bytes); lookups and
 * inserts cost O(1) on average (open addressing, linear probing, at most half
 * full). Beyond max entries the one with the lowest seq (the job unchanged for
 * longest, the least likely to race) is forgotten. Knows nothing of streams.
 */
#ifndef IMPORTER_SEQMAP_H
#define IMPORTER_SEQMAP_H

#include <stdint.h>

#define SEQMAP_KEY_LEN 37

struct seqmap_slot {
	char key[SEQMAP_KEY_LEN]; /* "" = empty */
	int64_t seq;
};

struct seqmap {
	struct seqmap_slot *slots; /* owned; cap of them (0 = none yet) */
	int cap;                   /* a power of two */
	int count;
	int max; /* entries kept at most */
};

/* An empty map keeping at most max entries (max >= 1). No allocation yet. */
void seqmap_init(struct seqmap *m, int max);

/* Frees the slots; m can be initialised again. */
void seqmap_release(struct seqmap *m);

/* Where m keeps key's seq: the existing entry, or a new one at 0 (evicting the
 * lowest seq when full). NULL when out of memory. Valid until the next call. */
int64_t *seqmap_slot(struct seqmap *m, const char *key);

/* key's seq, or -1 when m does not hold key. */
int64_t seqmap_get(const struct seqmap *m, const char *key);

#endif
