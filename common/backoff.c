/* backoff.c -- exponential backoff with jitter (see backoff.h). */
#include "backoff.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

void backoff_init(struct backoff *b, unsigned base_ms, unsigned cap_ms)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	b->base_ms = base_ms > 0 ? base_ms : 1;
	b->cap_ms = cap_ms >= b->base_ms ? cap_ms : b->base_ms;
	b->window_ms = b->base_ms;
	b->seed = (unsigned)now.tv_nsec ^ ((unsigned)getpid() << 16);
	b->attempts = 0;
}

unsigned backoff_next_ms(struct backoff *b)
{
	unsigned half = b->window_ms / 2;
	unsigned delay = half + (unsigned)rand_r(&b->seed) % (b->window_ms - half + 1);

	b->window_ms = b->window_ms > b->cap_ms / 2 ? b->cap_ms : b->window_ms * 2;
	b->attempts++;
	return delay;
}

void backoff_reset(struct backoff *b)
{
	b->window_ms = b->base_ms;
	b->attempts = 0;
}
