/* backoff.h -- exponential backoff with jitter for reconnects and retries.
 *
 * Each call to backoff_next_ms() returns a delay drawn from the upper half of
 * the current window, then doubles the window up to the cap; backoff_reset()
 * starts over after a success. The jitter spreads a fleet that lost its
 * database at the same instant, so it does not reconnect in lockstep.
 */
#ifndef IMPORTER_BACKOFF_H
#define IMPORTER_BACKOFF_H

struct backoff {
	unsigned base_ms;    /* first window */
	unsigned cap_ms;     /* largest window */
	unsigned window_ms;  /* current window */
	unsigned seed;       /* rand_r state */
	unsigned attempts;   /* delays handed out since the last reset */
};

/* Starts a backoff with windows from base_ms doubling up to cap_ms. */
void backoff_init(struct backoff *b, unsigned base_ms, unsigned cap_ms);

/* The next delay, in [window/2, window]; then the window doubles. */
unsigned backoff_next_ms(struct backoff *b);

/* Back to the first window (after a success). */
void backoff_reset(struct backoff *b);

#endif
