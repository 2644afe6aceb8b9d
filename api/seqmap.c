/* seqmap.c -- bounded job id -> seq map (see seqmap.h). */
#include "seqmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u; /* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* key's slot in t (cap slots): its own, or the empty one where it belongs. */
static unsigned probe(const struct seqmap_slot *t, int cap, const char *key)
{
	unsigned mask = (unsigned)cap - 1, i = hash(key) & mask;

	while (t[i].key[0] != '\0' && strcmp(t[i].key, key) != 0)
		i = (i + 1) & mask;
	return i;
}

void seqmap_init(struct seqmap *m, int max)
{
	m->slots = NULL;
	m->cap = 0;
	m->count = 0;
	m->max = max;
}

void seqmap_release(struct seqmap *m)
{
	free(m->slots);
	seqmap_init(m, m->max);
}

static int grow(struct seqmap *m)
{
	size_t cap = m->cap <= 0 ? 16 : (size_t)m->cap * 2;
	struct seqmap_slot *t;

	if (cap > (size_t)1 << 24) /* far beyond any max: refuse */
		return -1;
	t = calloc(cap, sizeof(*t));
	if (t == NULL)
		return -1;
	for (int i = 0; i < m->cap; i++)
		if (m->slots[i].key[0] != '\0')
			t[probe(t, (int)cap, m->slots[i].key)] = m->slots[i];
	free(m->slots);
	m->slots = t;
	m->cap = (int)cap;
	return 0;
}

/* Forgets the entry with the lowest seq, moving the entries after it back so
 * that every probe still finds its key (no tombstones). */
static void evict_lowest(struct seqmap *m)
{
	struct seqmap_slot *t = m->slots;
	unsigned mask = (unsigned)m->cap - 1, hole, j;
	int low = -1;

	for (int k = 0; k < m->cap; k++)
		if (t[k].key[0] != '\0' && (low < 0 || t[k].seq < t[low].seq))
			low = k;
	hole = j = (unsigned)low;
	for (;;) {
		unsigned home;

		j = (j + 1) & mask;
		if (t[j].key[0] == '\0')
			break;
		home = hash(t[j].key) & mask;
		/* t[j] may fill the hole unless its home lies cyclically in (hole, j]. */
		if (hole <= j ? (home <= hole || home > j) : (home <= hole && home > j)) {
			t[hole] = t[j];
			hole = j;
		}
	}
	t[hole].key[0] = '\0';
	m->count--;
}

int64_t *seqmap_slot(struct seqmap *m, const char *key)
{
	unsigned i;

	if (m->cap > 0) {
		i = probe(m->slots, m->cap, key);
		if (m->slots[i].key[0] != '\0')
			return &m->slots[i].seq;
	}
	if (m->count >= m->max && m->count > 0)
		evict_lowest(m);
	else if ((m->count + 1) * 2 > m->cap && grow(m) != 0)
		return NULL;
	i = probe(m->slots, m->cap, key);
	snprintf(m->slots[i].key, SEQMAP_KEY_LEN, "%s", key);
	m->slots[i].seq = 0;
	m->count++;
	return &m->slots[i].seq;
}

int64_t seqmap_get(const struct seqmap *m, const char *key)
{
	unsigned i;

	if (m->cap == 0)
		return -1;
	i = probe(m->slots, m->cap, key);
	return m->slots[i].key[0] != '\0' ? m->slots[i].seq : -1;
}
