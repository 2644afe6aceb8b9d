/* progress.c -- the live progress line, summaries and their formatting (see progress.h). */
#include "progress.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void progress_fmt_count(int64_t n, char *buf, size_t len)
{
	char digits[32], out[48];
	int nd, o = 0;
	bool neg = n < 0;

	snprintf(digits, sizeof(digits), "%llu",
	         neg ? 0ull - (unsigned long long)n : (unsigned long long)n);
	nd = (int)strlen(digits);
	if (neg)
		out[o++] = '-';
	for (int i = 0; i < nd; i++) {
		if (i > 0 && (nd - i) % 3 == 0)
			out[o++] = ',';
		out[o++] = digits[i];
	}
	out[o] = '\0';
	snprintf(buf, len, "%s", out);
}

void progress_fmt_duration(int64_t s, char *buf, size_t len)
{
	if (s < 0)
		snprintf(buf, len, "?");
	else if (s >= 3600)
		snprintf(buf, len, "%lld:%02lld:%02lld", (long long)(s / 3600),
		         (long long)(s / 60 % 60), (long long)(s % 60));
	else
		snprintf(buf, len, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
}

void progress_fmt_elapsed(double s, char *buf, size_t len)
{
	if (s < 0 || !isfinite(s))
		snprintf(buf, len, "?");
	else if (s < 60)
		snprintf(buf, len, "%.1f s", s);
	else
		progress_fmt_duration((int64_t)llround(s), buf, len);
}

void progress_fmt_rate(double r, char *buf, size_t len)
{
	if (r < 0 || !isfinite(r))
		snprintf(buf, len, "- rec/s");
	else if (r < 1000)
		snprintf(buf, len, "%.0f rec/s", r);
	else if (r < 999500)
		snprintf(buf, len, "%.1fk rec/s", r / 1000);
	else
		snprintf(buf, len, "%.1fM rec/s", r / 1e6);
}

/* The whole percent shown: 100 only at 100 (never rounded up to it). */
static int whole_percent(double p)
{
	if (!(p > 0))
		return 0;
	if (p >= 100)
		return 100;
	return p > 99 ? 99 : (int)p;
}

static void fmt_items(const struct progress_view *v, char *buf, size_t len)
{
	char done[32], total[32];

	progress_fmt_count(v->processed, done, sizeof(done));
	if (v->total > 0 || (v->total == 0 && !v->total_is_estimate)) {
		progress_fmt_count(v->total, total, sizeof(total));
		snprintf(buf, len, "%s/%s%s", done, v->total_is_estimate ? "~" : "", total);
	} else {
		snprintf(buf, len, "%s", done);
	}
}

/* What the line ends with: the phase, except while paused. */
static const char *stage(const struct progress_view *v)
{
	if (v->status != NULL && strcmp(v->status, "paused") == 0)
		return "paused";
	if (v->phase != NULL && v->phase[0] != '\0')
		return v->phase;
	return v->status != NULL ? v->status : "";
}

size_t progress_render(const struct progress_view *v, int width, char *buf, size_t len)
{
	/* Layouts from the richest down; the first that fits is drawn. The bar
	 * counts as 10 cells here and then takes what is left, up to 40. */
	static const struct {
		bool bar, items, rate, eta;
	} layouts[] = {
	    {true, true, true, true},   {true, true, false, true},   {true, true, false, false},
	    {false, true, false, true}, {false, true, false, false}, {false, false, false, false},
	};
	char items[80], rate[32], eta[32], tail[256];
	int pct = whole_percent(v->percent), bar = 0;
	size_t n;

	if (len == 0)
		return 0;
	if (width < 1)
		width = 1;
	fmt_items(v, items, sizeof(items));
	progress_fmt_rate(v->rate, rate, sizeof(rate));
	snprintf(eta, sizeof(eta), "ETA ");
	progress_fmt_duration(v->eta_seconds, eta + 4, sizeof(eta) - 4);
	for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
		snprintf(tail, sizeof(tail), "%3d%%%s%s%s%s%s%s  %s", pct,
		         layouts[i].items ? "  " : "", layouts[i].items ? items : "",
		         layouts[i].rate ? "  " : "", layouts[i].rate ? rate : "",
		         layouts[i].eta ? "  " : "", layouts[i].eta ? eta : "", stage(v));
		bar = layouts[i].bar ? width - (int)strlen(tail) - 3 : 0; /* "[", "] " */
		if ((int)strlen(tail) + (layouts[i].bar ? 13 : 0) <= width)
			break;
	}
	if (bar > 40)
		bar = 40;
	if (bar >= 10) {
		int filled = bar * pct / 100;
		char cells[48];

		for (int i = 0; i < bar; i++)
			cells[i] = i < filled ? '#' : '.';
		cells[bar] = '\0';
		snprintf(buf, len, "[%s] %s", cells, tail);
	} else {
		snprintf(buf, len, "%s", tail);
	}
	n = strlen(buf);
	if ((int)n > width) { /* a very narrow terminal: cut, never wrap */
		n = (size_t)width < len ? (size_t)width : len - 1;
		buf[n] = '\0';
	}
	return n;
}

size_t progress_render_plain(const struct progress_view *v, char *buf, size_t len)
{
	char items[80];

	fmt_items(v, items, sizeof(items));
	snprintf(buf, len, "%s: %d%% %s records", stage(v), whole_percent(v->percent), items);
	return strlen(buf);
}

void rate_meter_init(struct rate_meter *m, double window)
{
	memset(m, 0, sizeof(*m));
	m->window = window > 0 ? window : 10;
}

void rate_meter_add(struct rate_meter *m, double t, int64_t records)
{
	int last = (m->head + m->count - 1) % RATE_SAMPLES;

	if (m->count > 0 && (records < m->n[last] || t < m->t[last]))
		rate_meter_init(m, m->window); /* restarted from zero, or a clock jump */
	if (m->count > 0 && t == m->t[last]) {
		m->n[last] = records;
		return;
	}
	if (m->count == RATE_SAMPLES) {
		m->head = (m->head + 1) % RATE_SAMPLES;
		m->count--;
	}
	last = (m->head + m->count) % RATE_SAMPLES;
	m->t[last] = t;
	m->n[last] = records;
	m->count++;
	/* Forget what fell out of the window, but keep two samples. */
	while (m->count > 2 && t - m->t[m->head] > m->window) {
		m->head = (m->head + 1) % RATE_SAMPLES;
		m->count--;
	}
}

double rate_meter_rate(const struct rate_meter *m)
{
	int last = (m->head + m->count - 1) % RATE_SAMPLES;
	double dt;

	if (m->count < 2)
		return -1;
	dt = m->t[last] - m->t[m->head];
	if (dt <= 0)
		return -1;
	return (double)(m->n[last] - m->n[m->head]) / dt;
}

void progress_counts_text(int64_t inserted, int64_t updated, int64_t unchanged, int64_t failed,
			  char *buf, size_t len)
{
	char ins[32], upd[32], same[48] = "", fail[32];

	progress_fmt_count(inserted, ins, sizeof(ins));
	progress_fmt_count(updated, upd, sizeof(upd));
	if (unchanged > 0) {
		char n[32];

		progress_fmt_count(unchanged, n, sizeof(n));
		snprintf(same, sizeof(same), ", %s unchanged", n);
	}
	progress_fmt_count(failed, fail, sizeof(fail));
	snprintf(buf, len, "%s inserted, %s updated%s, %s failed", ins, upd, same, fail);
}

size_t progress_render_summary(const struct progress_summary *s, char *buf, size_t len)
{
	char counts[192], took[32];

	progress_counts_text(s->inserted, s->updated, s->unchanged, s->failed, counts,
			     sizeof(counts));
	progress_fmt_elapsed(s->seconds, took, sizeof(took));
	snprintf(buf, len, "%s in %s: %s%s%s%s", s->status != NULL ? s->status : "ended", took,
	         counts, s->dry_run ? " (dry run: nothing written)" : "",
	         s->error_message != NULL && s->error_message[0] != '\0' ? ": " : "",
	         s->error_message != NULL ? s->error_message : "");
	return strlen(buf);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil, written out; timegm() is not POSIX). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int progress_parse_time(const char *s, double *out)
{
	int y, mo, d, h, mi, n = 0, oh = 0, om = 0;
	double sec;
	const char *p;
	char *end;

	if (s == NULL ||
	    sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%n", &y, &mo, &d, &h, &mi, &n) != 5 || n == 0)
		return -1;
	p = s + n;
	sec = strtod(p, &end);
	if (end == p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec < 0 ||
	    sec >= 61)
		return -1;
	p = end;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1;

		if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) != 2)
			return -1;
		oh *= sign;
		om *= sign;
		p += 1 + n;
	} else {
		return -1;
	}
	if (*p != '\0')
		return -1;
	*out = (double)(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60) + sec -
	       (double)(oh * 3600 + om * 60);
	return 0;
}
